// ServiceEntry: services the mesh does not discover on its own (external APIs, VMs), with their
// ports, how their addresses resolve, and optionally their endpoints.
import {
  array,
  type Ctx,
  fail,
  isObject,
  join,
  map,
  object,
  string,
  uint32,
  type Validator,
  warn,
} from '../schema.ts';
import {
  caseInsensitiveEnum,
  eachString,
  exportTo,
  host,
  ipOrCidr,
  labels,
  NOT_ENFORCED,
  networkingWorkloadSelector,
  nonEmptyString,
  portNumber,
  stringList,
} from './common.ts';
import { isCIDR, isIP, isWildcardHost } from './syntax.ts';
import type { KindInfo } from './types.ts';

export const SERVICE_PROTOCOLS = [
  'HTTP',
  'HTTPS',
  'GRPC',
  'GRPC-WEB',
  'HTTP2',
  'HTTP_PROXY',
  'MONGO',
  'REDIS',
  'MYSQL',
  'TCP',
  'TLS',
  'UDP',
] as const;

/** Istio's `ServicePort` (named apart from the core Service's port). */
export interface ServiceEntryPort {
  number: number;
  protocol?: string;
  name: string;
  targetPort?: number;
}

/** An endpoint of a ServiceEntry (the WorkloadEntry shape). */
export interface WorkloadEntry {
  /** IP, DNS name, or `unix:///path` / `unix://@abstract`. */
  address?: string;
  /** Service port name → endpoint port. */
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  network?: string;
  /** `region/zone/subzone`. */
  locality?: string;
  weight?: number;
  serviceAccount?: string;
}

export type ServiceEntryResolution = 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'DYNAMIC_DNS';

export interface ServiceEntrySpec {
  hosts: string[];
  addresses?: string[];
  ports?: ServiceEntryPort[];
  /** Default MESH_EXTERNAL. */
  location?: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  /** Default NONE. */
  resolution?: ServiceEntryResolution;
  endpoints?: WorkloadEntry[];
  workloadSelector?: { labels?: Record<string, string> };
  exportTo?: string[];
  subjectAltNames?: string[];
}

const endpointPortNameRe = /^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

const endpointAddress: Validator = string({
  check: (v, path, ctx) => {
    if (v.startsWith('unix://')) {
      const rest = v.slice('unix://'.length);
      if (
        !(rest.startsWith('/') && rest.length > 1 && !rest.endsWith('/')) &&
        !(rest.startsWith('@') && rest.length > 1)
      ) {
        fail(
          ctx,
          path,
          `unix domain socket address ${JSON.stringify(v)} is not valid: expected "unix:///absolute/path" or "unix://@abstract"`,
        );
      }
      return;
    }
    if (!isIP(v) && (v.includes('*') || !isWildcardHost(v))) {
      fail(
        ctx,
        path,
        `endpoint address ${JSON.stringify(v)} is not an IP address, DNS name or unix:// socket`,
      );
    }
  },
});

const endpoint: Validator = object(
  {
    address: endpointAddress,
    ports: map(portNumber(), {
      key: (k, path, ctx) => {
        const name = k as string;
        if (name.length >= 63 || !endpointPortNameRe.test(name)) {
          fail(
            ctx,
            path,
            `endpoint port name ${JSON.stringify(name)} is not valid: expected letters, digits and "-", under 63 characters`,
          );
        }
      },
    }),
    labels: labels(),
    network: string(),
    locality: string({ pattern: /^[^/]+(\/[^/]+){0,2}$/, patternName: '"region[/zone[/subzone]]"' }),
    weight: uint32(),
    serviceAccount: string(),
  },
  {
    check: (v, path, ctx) => {
      if ((v.address == null || v.address === '') && (v.network == null || v.network === '')) {
        fail(ctx, join(path, 'address'), 'address is required (unless network is set)');
      }
      if (
        typeof v.address === 'string' &&
        v.address.startsWith('unix://') &&
        isObject(v.ports) &&
        Object.keys(v.ports).length > 0
      ) {
        fail(ctx, join(path, 'ports'), 'a unix domain socket endpoint cannot have ports');
      }
    },
  },
);

const servicePort: Validator = object(
  {
    number: portNumber(),
    protocol: caseInsensitiveEnum(SERVICE_PROTOCOLS, 'protocol'),
    name: nonEmptyString(),
    targetPort: portNumber(),
  },
  { required: ['number', 'name'] },
);

function checkPorts(v: unknown, path: string, ctx: Ctx): void {
  if (!Array.isArray(v)) return;
  const names = new Set<string>();
  const numbers = new Set<number>();
  v.forEach((p, i) => {
    if (!isObject(p)) return;
    if (typeof p.name === 'string') {
      if (names.has(p.name))
        fail(ctx, join(join(path, i), 'name'), `service entry port name "${p.name}" already defined`);
      names.add(p.name);
    }
    if (typeof p.number === 'number') {
      if (numbers.has(p.number))
        fail(ctx, join(join(path, i), 'number'), `service entry port ${p.number} already defined`);
      numbers.add(p.number);
    }
  });
}

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function checkServiceEntry(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const resolution = (v.resolution as string | undefined) ?? 'NONE';
  const endpoints = list(v.endpoints);
  const hosts = eachString(v.hosts);
  const at = (field: string) => join(path, field);

  if (v.workloadSelector != null && endpoints.length > 0) {
    fail(ctx, at('workloadSelector'), 'only one of WorkloadSelector or Endpoints can be set');
  }
  if (v.workloadSelector != null && (v.location ?? 'MESH_EXTERNAL') === 'MESH_EXTERNAL') {
    warn(ctx, at('workloadSelector'), 'workloadSelector applies to MESH_INTERNAL services only');
  }
  if (eachString(v.addresses).some(isCIDR) && resolution !== 'NONE' && resolution !== 'STATIC') {
    fail(
      ctx,
      at('addresses'),
      `CIDR addresses are allowed only for NONE/STATIC resolution types, found ${resolution}`,
    );
  }

  switch (resolution) {
    case 'NONE':
      if (endpoints.length > 0) fail(ctx, at('endpoints'), 'NONE mode cannot set endpoints');
      break;
    case 'STATIC':
      endpoints.forEach((e, i) => {
        const address = isObject(e) ? e.address : undefined;
        if (typeof address === 'string' && !isIP(address) && !address.startsWith('unix://')) {
          fail(
            ctx,
            join(join(at('endpoints'), i), 'address'),
            `STATIC resolution needs IP or unix:// endpoint addresses, found ${JSON.stringify(address)}`,
          );
        }
      });
      break;
    case 'DNS_ROUND_ROBIN':
    case 'DNS':
      if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) {
        fail(ctx, at('endpoints'), 'DNS_ROUND_ROBIN mode cannot have multiple endpoints');
      }
      if (endpoints.length === 0 && v.workloadSelector == null) {
        hosts.forEach((h, i) => {
          if (h.includes('*')) {
            fail(
              ctx,
              join(at('hosts'), i),
              `hosts must be FQDN if no endpoints are provided for resolution mode ${resolution}, found ${h}`,
            );
          }
        });
      }
      break;
    case 'DYNAMIC_DNS':
      if (endpoints.length > 0 || v.workloadSelector != null) {
        fail(ctx, path, 'DYNAMIC_DNS resolution cannot set endpoints or workloadSelector');
      }
      hosts.forEach((h, i) => {
        if (!h.startsWith('*'))
          fail(
            ctx,
            join(at('hosts'), i),
            `DYNAMIC_DNS resolution requires wildcard hosts such as "*.example.com", found ${h}`,
          );
      });
      break;
  }

  const portNames = new Set(list(v.ports).map((p) => (isObject(p) ? p.name : undefined)));
  endpoints.forEach((e, i) => {
    if (!isObject(e) || !isObject(e.ports)) return;
    for (const name of Object.keys(e.ports)) {
      if (!portNames.has(name)) {
        fail(
          ctx,
          join(join(join(at('endpoints'), i), 'ports'), name),
          `endpoint port ${name} is not defined by the service entry`,
        );
      }
    }
  });
}

const servicePorts = array(servicePort);

const serviceEntryFields = object(
  {
    hosts: array(host({ what: 'host' }), { unique: true }),
    addresses: array(ipOrCidr(), { unique: true }),
    ports: (v, path, ctx) => {
      servicePorts(v, path, ctx);
      checkPorts(v, path, ctx);
    },
    location: string({ enum: ['MESH_EXTERNAL', 'MESH_INTERNAL'] }),
    resolution: string({ enum: ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS'] }),
    endpoints: array(endpoint),
    workloadSelector: networkingWorkloadSelector(),
    exportTo: exportTo(),
    subjectAltNames: stringList(nonEmptyString()),
  },
  { check: checkServiceEntry },
);

/** Why the limits below: the L4 path (TCP proxying, SNI routing) is not wired to the sidecar yet. */
const L4 =
  'its cluster is compiled, but sidecars route HTTP by host only until the TCP/TLS listeners land; for TLS to the upstream, declare the port HTTP and set a DestinationRule tls mode SIMPLE';

/**
 * What Trellis does with a valid entry (compile/service-entries.ts) is narrower than Istio: each
 * part it does not act on gets its own warning, so that what is left is what runs.
 */
function warnNotEnforced(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const at = (field: string) => join(path, field);
  const ne = (p: string, what: string) => warn(ctx, p, `${NOT_ENFORCED}: ${what}`);
  if (v.resolution === 'DYNAMIC_DNS')
    ne(at('resolution'), 'resolution DYNAMIC_DNS: the hosts are not routed; use NONE or DNS');
  list(v.ports).forEach((p, i) => {
    if (!isObject(p) || p.protocol === undefined) return;
    const protocol = String(p.protocol).toUpperCase();
    if (protocol === 'HTTP' || protocol === 'HTTP_PROXY') return;
    ne(
      join(join(at('ports'), i), 'protocol'),
      `port ${p.number} (protocol ${p.protocol}) is not routed: ${L4}`,
    );
  });
  const cidrs = eachString(v.addresses).filter(isCIDR);
  if (cidrs.length > 0)
    ne(
      at('addresses'),
      `CIDR addresses (${cidrs.join(', ')}) select connections, which is the L4 path's; single addresses name the entry's virtual host`,
    );
  list(v.endpoints).forEach((e, i) => {
    if (!isObject(e)) return;
    const ep = join(at('endpoints'), i);
    if (e.network != null)
      ne(
        join(ep, 'network'),
        'endpoint network: there are no network gateways, the address is reached directly',
      );
    if (typeof e.address === 'string' && e.address.startsWith('unix://'))
      ne(join(ep, 'address'), 'unix domain socket endpoints are not routed');
  });
}

export const serviceEntrySpec: Validator = (v, path, ctx) => {
  serviceEntryFields(v, path, ctx);
  if (!isObject(v)) return;
  if (eachString(v.hosts).length === 0) {
    fail(ctx, join(path, 'hosts'), 'service entry must have at least one host');
  }
  warnNotEnforced(v, path, ctx);
};

export const serviceEntry: KindInfo = {
  group: 'networking.istio.io',
  kind: 'ServiceEntry',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  plural: 'serviceentries',
  shortNames: ['se'],
  spec: serviceEntrySpec,
};
