// Core `v1` Service: a stable name and ports in front of the workloads its selector picks.
import {
  array,
  boolean,
  type Ctx,
  fail,
  int,
  isObject,
  join,
  object,
  string,
  type Validator,
  warn,
} from '../schema.ts';
import { dns1123Label, dns1123Subdomain, labels, NOT_ENFORCED, portNumber } from './common.ts';
import { isIanaSvcName, isIP, isIPOrCIDR } from './syntax.ts';
import type { KindInfo } from './types.ts';

export interface ServicePort {
  /** Required and unique when the service has more than one port. */
  name?: string;
  port: number;
  /** A workload port number, or the name of a workload port; defaults to `port`. */
  targetPort?: number | string;
  /** Default TCP. */
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  /** Protocol hint (`http`, `http2`, `grpc`, `tcp`, ...); takes precedence over the port-name prefix. */
  appProtocol?: string;
  nodePort?: number;
}

export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';

export interface ServiceSpec {
  selector?: Record<string, string>;
  ports?: ServicePort[];
  /** Default ClusterIP. */
  type?: ServiceType;
  /** An IP, "None" (headless) or empty. */
  clusterIP?: string;
  clusterIPs?: string[];
  externalName?: string;
  /** Default None. */
  sessionAffinity?: 'None' | 'ClientIP';
  sessionAffinityConfig?: unknown;
  externalIPs?: string[];
  loadBalancerIP?: string;
  loadBalancerSourceRanges?: string[];
  loadBalancerClass?: string;
  externalTrafficPolicy?: 'Cluster' | 'Local';
  internalTrafficPolicy?: 'Cluster' | 'Local';
  healthCheckNodePort?: number;
  publishNotReadyAddresses?: boolean;
  ipFamilies?: ('IPv4' | 'IPv6')[];
  ipFamilyPolicy?: 'SingleStack' | 'PreferDualStack' | 'RequireDualStack';
  allocateLoadBalancerNodePorts?: boolean;
  trafficDistribution?: string;
}

const targetPort: Validator = (v, path, ctx) => {
  if (typeof v === 'number') return portNumber()(v, path, ctx);
  if (typeof v === 'string') {
    if (/^\d+$/.test(v)) return portNumber()(Number(v), path, ctx);
    if (!isIanaSvcName(v)) {
      fail(
        ctx,
        path,
        `targetPort ${JSON.stringify(v)} is not valid: expected a port number or a port name (at most 15 lower-case letters, digits and "-", with at least one letter)`,
      );
    }
    return;
  }
  fail(ctx, path, `expected a port number or port name, found ${v === null ? 'null' : typeof v}`);
};

/** appProtocol values Trellis proxies as what they say; `<protocol>[-<suffix>]` as Istio reads them. */
const L4_OR_HTTP = /^(http|http2|grpc|tcp|tls|https|mongo|redis|mysql)(-|$)/;
/** Accepted, not yet served as what they say (no gRPC-Web translation, no HTTP CONNECT proxying). */
const NOT_SERVED = /^(grpc-web|http_proxy)(-|$)/;

const servicePort: Validator = object(
  {
    name: dns1123Label('port name'),
    port: portNumber(),
    targetPort,
    protocol: string({ enum: ['TCP', 'UDP', 'SCTP'] }),
    appProtocol: string({ minLength: 1 }),
    nodePort: portNumber(),
  },
  {
    required: ['port'],
    notEnforced: ['nodePort'],
    check: (v, path, ctx) => {
      const app = typeof v.appProtocol === 'string' ? v.appProtocol.toLowerCase() : undefined;
      // HTTP, HTTP/2, gRPC and the L4 protocols are proxied as such (compile/protocol.ts,
      // app-protocol.ts); an unknown one is sniffed.
      if (app !== undefined && NOT_SERVED.test(app)) {
        warn(
          ctx,
          join(path, 'appProtocol'),
          `${NOT_ENFORCED}: Trellis serves ports as HTTP, HTTP/2 and gRPC for now, found ${v.appProtocol}`,
        );
      } else if (app !== undefined && !L4_OR_HTTP.test(app) && !app.startsWith('kubernetes.io/')) {
        warn(
          ctx,
          join(path, 'appProtocol'),
          `appProtocol ${v.appProtocol} names no protocol Istio knows: connections are sniffed (HTTP detected, anything else proxied as TCP)`,
        );
      }
      if (v.protocol === 'UDP' || v.protocol === 'SCTP') {
        warn(ctx, join(path, 'protocol'), `${NOT_ENFORCED}: Trellis proxies TCP only, found ${v.protocol}`);
      }
    },
  },
);

function checkPorts(ports: unknown[], path: string, ctx: Ctx): void {
  const names = new Map<string, number>();
  const numbers = new Map<string, number>();
  ports.forEach((p, i) => {
    if (!isObject(p)) return;
    const at = join(path, i);
    if (ports.length > 1 && (p.name === undefined || p.name === null || p.name === '')) {
      fail(ctx, join(at, 'name'), 'port name is required when a service has more than one port');
    }
    if (typeof p.name === 'string' && p.name !== '') {
      const first = names.get(p.name);
      if (first !== undefined)
        fail(ctx, join(at, 'name'), `duplicate port name "${p.name}" (also ports[${first}])`);
      else names.set(p.name, i);
    }
    if (typeof p.port === 'number') {
      const key = `${p.port}/${p.protocol ?? 'TCP'}`;
      const first = numbers.get(key);
      if (first !== undefined) fail(ctx, join(at, 'port'), `duplicate port ${key} (also ports[${first}])`);
      else numbers.set(key, i);
    }
  });
}

const clusterIP: Validator = string({
  check: (v, path, ctx) => {
    if (v !== '' && v !== 'None' && !isIP(v))
      fail(ctx, path, `clusterIP ${JSON.stringify(v)} is not valid: expected an IP address, "None" or ""`);
  },
});

const portList = array(servicePort);

const fields: Validator = object(
  {
    selector: labels(),
    ports: (v, path, ctx) => {
      portList(v, path, ctx);
      if (Array.isArray(v)) checkPorts(v, path, ctx);
    },
    type: string({ enum: ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] }),
    clusterIP,
    clusterIPs: array(clusterIP, { max: 2 }),
    externalName: dns1123Subdomain('externalName'),
    sessionAffinity: string({ enum: ['None', 'ClientIP'] }),
    sessionAffinityConfig: object({ clientIP: object({ timeoutSeconds: int({ min: 1, max: 86400 }) }) }),
    externalIPs: array(
      string({
        check: (v, p, c) => void (!isIP(v) && fail(c, p, `${JSON.stringify(v)} is not an IP address`)),
      }),
    ),
    loadBalancerIP: string(),
    loadBalancerSourceRanges: array(
      string({
        check: (v, p, c) => void (!isIPOrCIDR(v) && fail(c, p, `${JSON.stringify(v)} is not a CIDR block`)),
      }),
    ),
    loadBalancerClass: string(),
    externalTrafficPolicy: string({ enum: ['Cluster', 'Local'] }),
    internalTrafficPolicy: string({ enum: ['Cluster', 'Local'] }),
    healthCheckNodePort: portNumber(),
    publishNotReadyAddresses: boolean(),
    ipFamilies: array(string({ enum: ['IPv4', 'IPv6'] }), { max: 2, unique: true }),
    ipFamilyPolicy: string({ enum: ['SingleStack', 'PreferDualStack', 'RequireDualStack'] }),
    allocateLoadBalancerNodePorts: boolean(),
    trafficDistribution: string(),
  },
  {
    // Kubernetes networking features that have no counterpart in the local runtime yet.
    notEnforced: [
      'clusterIPs',
      'sessionAffinityConfig',
      'externalIPs',
      'loadBalancerIP',
      'loadBalancerSourceRanges',
      'loadBalancerClass',
      'externalTrafficPolicy',
      'internalTrafficPolicy',
      'healthCheckNodePort',
      'publishNotReadyAddresses',
      'ipFamilies',
      'ipFamilyPolicy',
      'allocateLoadBalancerNodePorts',
      'trafficDistribution',
    ],
    check: (v, path, ctx) => {
      const type = (v.type as string | undefined) ?? 'ClusterIP';
      if (type !== 'ClusterIP') {
        warn(
          ctx,
          join(path, 'type'),
          `${NOT_ENFORCED}: Trellis serves ClusterIP services only, found ${type}`,
        );
      }
      if (v.sessionAffinity === 'ClientIP') {
        warn(
          ctx,
          join(path, 'sessionAffinity'),
          `${NOT_ENFORCED}: requests are balanced without client affinity`,
        );
      }
      if (type === 'ExternalName' && (typeof v.externalName !== 'string' || v.externalName === '')) {
        fail(ctx, join(path, 'externalName'), 'externalName is required for type ExternalName');
      }
      if (type !== 'ExternalName' && v.externalName != null) {
        fail(
          ctx,
          join(path, 'externalName'),
          `externalName is only valid for type ExternalName, found type ${type}`,
        );
      }
      const ports = Array.isArray(v.ports) ? v.ports : [];
      if (type !== 'ExternalName' && ports.length === 0) {
        fail(ctx, join(path, 'ports'), 'a service needs at least one port');
      }
    },
  },
);

export const serviceSpec: Validator = fields;

export const service: KindInfo = {
  group: '',
  kind: 'Service',
  versions: ['v1'],
  plural: 'services',
  shortNames: ['svc'],
  spec: serviceSpec,
};
