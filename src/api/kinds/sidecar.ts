// Sidecar: what one workload's sidecar sees (egress hosts and ports), how it takes traffic in
// (ingress ports and where they go), and its outbound traffic policy.
import {
  array,
  boolean,
  type Ctx,
  fail,
  isObject,
  join,
  object,
  string,
  type Validator,
  warn,
} from '../schema.ts';
import { labels, NOT_ENFORCED, nonEmptyString, portNumber, stringList } from './common.ts';
import { SERVICE_PROTOCOLS } from './service-entry.ts';
import { isDns1123Label, isIP, isWildcardHost } from './syntax.ts';
import { connectionPool } from './traffic-policy.ts';
import type { KindInfo } from './types.ts';

export interface SidecarPort {
  number: number;
  protocol?: string;
  name?: string;
}

export type CaptureMode = 'DEFAULT' | 'IPTABLES' | 'NONE';

export interface IstioIngressListener {
  port: SidecarPort;
  bind?: string;
  captureMode?: CaptureMode;
  /** `127.0.0.1:<port>`, `0.0.0.0:<port>` (and the IPv6 forms) or `unix://<path>`. */
  defaultEndpoint?: string;
  tls?: Record<string, unknown>;
  connectionPool?: Record<string, unknown>;
}

export interface IstioEgressListener {
  port?: SidecarPort;
  bind?: string;
  captureMode?: CaptureMode;
  /** `namespace/dnsName`; namespace `*`, `.`, `~` or a name. */
  hosts: string[];
}

export type OutboundTrafficPolicyMode = 'REGISTRY_ONLY' | 'ALLOW_ANY';

export interface SidecarSpec {
  workloadSelector?: { labels?: Record<string, string> };
  ingress?: IstioIngressListener[];
  egress?: IstioEgressListener[];
  inboundConnectionPool?: Record<string, unknown>;
  outboundTrafficPolicy?: { mode?: OutboundTrafficPolicyMode; egressProxy?: Record<string, unknown> };
}

/** An egress host split: `ns` is `*` (any), `.` (the workload's), `~` (none) or a namespace name. */
export interface SidecarHost {
  ns: string;
  dns: string;
}

/** `prod/*.example.com` → {ns: prod, dns: *.example.com}; undefined when it is not `namespace/dnsName`. */
export function parseSidecarHost(h: string): SidecarHost | undefined {
  const slash = h.indexOf('/');
  if (slash <= 0 || slash === h.length - 1) return undefined;
  return { ns: h.slice(0, slash), dns: h.slice(slash + 1).toLowerCase() };
}

const egressHost: Validator = string({
  check: (v, path, ctx) => {
    const h = parseSidecarHost(v);
    if (!h)
      return fail(
        ctx,
        path,
        `sidecar: host ${JSON.stringify(v)} must be of form namespace/dnsName, e.g. "./*", "istio-system/*" or "prod/reviews.prod.svc.cluster.local"`,
      );
    if (h.ns.startsWith('~') && h.ns !== '~')
      return fail(
        ctx,
        path,
        `host ${JSON.stringify(v)}: exclusion entries ("~<namespace>/...") are not supported; list the hosts to include`,
      );
    if (h.ns !== '*' && h.ns !== '.' && h.ns !== '~' && !isDns1123Label(h.ns))
      return fail(
        ctx,
        path,
        `host ${JSON.stringify(v)} has an invalid namespace ${JSON.stringify(h.ns)}: expected "*", ".", "~" or a namespace name`,
      );
    if (!isWildcardHost(h.dns))
      return fail(
        ctx,
        path,
        `host ${JSON.stringify(v)} has an invalid DNS name ${JSON.stringify(h.dns)}: expected an FQDN, "*" or a left-most wildcard such as "*.example.com"`,
      );
    if (h.ns !== '~' && !h.dns.includes('.') && h.dns !== '*')
      warn(
        ctx,
        path,
        `host ${JSON.stringify(v)}: "${h.dns}" is matched as written, against full names: write the service's FQDN (e.g. "${h.dns}.<namespace>.svc.cluster.local") or "*"`,
      );
  },
});

const sidecarPort: Validator = object(
  {
    number: portNumber(),
    protocol: string({
      check: (v, path, ctx) => {
        if (!SERVICE_PROTOCOLS.some((p) => p.toLowerCase() === v.toLowerCase()))
          fail(ctx, path, `protocol ${JSON.stringify(v)} is not one of ${SERVICE_PROTOCOLS.join(', ')}`);
      },
    }),
    name: nonEmptyString(),
  },
  { required: ['number'] },
);

const captureMode = string({ enum: ['DEFAULT', 'IPTABLES', 'NONE'] });

// Istio's forms: the loopback or any address with a port, or a unix domain socket.
const endpointRe = /^(127\.0\.0\.1|0\.0\.0\.0|\[::1\]|\[::\]):(\d{1,5})$/;

/** The port a `defaultEndpoint` forwards to, or undefined for a unix domain socket. */
export function defaultEndpointPort(ep: string): number | undefined {
  const m = endpointRe.exec(ep);
  return m ? Number(m[2]) : undefined;
}

const defaultEndpoint: Validator = string({
  check: (v, path, ctx) => {
    if (v.startsWith('unix://') && v.length > 'unix://'.length) return;
    const m = endpointRe.exec(v);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65535)
      fail(
        ctx,
        path,
        `sidecar: defaultEndpoint ${JSON.stringify(v)} must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>`,
      );
  },
});

const bind: Validator = string({
  check: (v, path, ctx) => {
    if (!v.startsWith('unix://') && !isIP(v))
      fail(ctx, path, `bind ${JSON.stringify(v)} must be an IP address or unix://<path>`);
  },
});

const TLS_MODES = ['SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL', 'PASSTHROUGH', 'AUTO_PASSTHROUGH', 'OPTIONAL_MUTUAL'];

// ServerTLSSettings as a sidecar takes it: certificates from files only.
const ingressTls: Validator = object(
  {
    mode: string({ enum: TLS_MODES }),
    httpsRedirect: boolean(),
    serverCertificate: string(),
    privateKey: string(),
    caCertificates: string(),
    caCrl: string(),
    credentialName: string(),
    credentialNames: stringList(),
    subjectAltNames: stringList(),
    verifyCertificateSpki: stringList(),
    verifyCertificateHash: stringList(),
    minProtocolVersion: string(),
    maxProtocolVersion: string(),
    cipherSuites: stringList(),
  },
  {
    check: (v, path, ctx) => {
      if (v.httpsRedirect === true)
        fail(ctx, join(path, 'httpsRedirect'), 'sidecar: httpsRedirect is not supported');
      if (v.credentialName != null || v.credentialNames != null)
        fail(
          ctx,
          path,
          'sidecar: credentialName is not currently supported: give serverCertificate and privateKey files',
        );
      const mode = (v.mode as string | undefined) ?? 'PASSTHROUGH';
      if (mode !== 'SIMPLE' && mode !== 'MUTUAL')
        fail(
          ctx,
          join(path, 'mode'),
          `sidecar: ingress tls mode ${mode} is not supported: use SIMPLE or MUTUAL`,
        );
      else if (v.serverCertificate == null || v.privateKey == null)
        fail(ctx, path, `sidecar: ingress tls mode ${mode} requires serverCertificate and privateKey`);
    },
  },
);

const ingressListener: Validator = object(
  {
    port: sidecarPort,
    bind,
    captureMode,
    defaultEndpoint,
    tls: ingressTls,
    connectionPool,
  },
  {
    required: ['port'],
    check: (v, path, ctx) => {
      const ep = typeof v.defaultEndpoint === 'string' ? v.defaultEndpoint : '';
      if (
        ep.startsWith('unix://') &&
        v.captureMode != null &&
        v.captureMode !== 'DEFAULT' &&
        v.captureMode !== 'NONE'
      )
        fail(
          ctx,
          join(path, 'captureMode'),
          'sidecar: a unix domain socket endpoint requires captureMode DEFAULT or NONE',
        );
    },
  },
);

const egressListener: Validator = object(
  {
    port: sidecarPort,
    bind,
    captureMode,
    hosts: array(egressHost, { min: 1 }),
  },
  { required: ['hosts'] },
);

const fields: Validator = object(
  {
    workloadSelector: object(
      { labels: labels() },
      {
        check: (v, path, ctx) => {
          if (!isObject(v.labels) || Object.keys(v.labels).length === 0)
            fail(
              ctx,
              join(path, 'labels'),
              'sidecar: workloadSelector labels must not be empty: leave workloadSelector out to select the whole namespace',
            );
        },
      },
    ),
    ingress: array(ingressListener),
    egress: array(egressListener),
    inboundConnectionPool: connectionPool,
    outboundTrafficPolicy: object(
      {
        mode: string({ enum: ['REGISTRY_ONLY', 'ALLOW_ANY'] }),
        egressProxy: object({
          host: nonEmptyString(),
          subset: string(),
          port: object({ number: portNumber() }),
        }),
      },
      {
        check: (v, path, ctx) => {
          if (v.egressProxy != null && v.mode !== 'ALLOW_ANY')
            fail(
              ctx,
              join(path, 'egressProxy'),
              'sidecar: egressProxy must be set only with ALLOW_ANY outbound traffic policy mode',
            );
        },
      },
    ),
  },
  { check: checkSidecar },
);

const list = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v.filter(isObject) : []);
const portOf = (l: Record<string, unknown>): number | undefined =>
  isObject(l.port) && typeof l.port.number === 'number' ? l.port.number : undefined;

function checkSidecar(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const egress = list(v.egress);
  const ingress = list(v.ingress);
  if (
    egress.length === 0 &&
    ingress.length === 0 &&
    v.outboundTrafficPolicy == null &&
    v.inboundConnectionPool == null
  )
    fail(ctx, path, 'sidecar: empty configuration provided: give egress, ingress or outboundTrafficPolicy');
  const seenIngress = new Map<number, number>();
  ingress.forEach((l, i) => {
    const port = portOf(l);
    if (port === undefined) return;
    const first = seenIngress.get(port);
    if (first !== undefined)
      fail(
        ctx,
        join(join(join(path, 'ingress'), i), 'port'),
        `sidecar: ingress port ${port} is already defined by ingress[${first}]: ports must be unique`,
      );
    else seenIngress.set(port, i);
  });
  const seenEgress = new Map<number, number>();
  egress.forEach((l, i) => {
    const at = join(join(path, 'egress'), i);
    const port = portOf(l);
    if (port === undefined) {
      // The listener without a port catches every other port: Istio wants it once, and last.
      if (i !== egress.length - 1)
        fail(ctx, at, 'sidecar: the egress listener with empty port should be the last listener in the list');
      return;
    }
    const first = seenEgress.get(port);
    if (first !== undefined)
      fail(
        ctx,
        join(at, 'port'),
        `sidecar: egress port ${port} is already defined by egress[${first}]: ports must be unique`,
      );
    else seenEgress.set(port, i);
  });
  warnNotEnforced(v, path, ctx);
}

/** The local runtime has no network namespace per workload: what needs one is warned. */
function warnNotEnforced(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const ne = (p: string, what: string) => warn(ctx, p, `${NOT_ENFORCED}: ${what}`);
  list(v.ingress).forEach((l, i) => {
    const at = join(join(path, 'ingress'), i);
    if (l.bind != null)
      ne(join(at, 'bind'), 'bind: the inbound listener is the one mTLS port of the sidecar');
    if (l.captureMode != null)
      ne(join(at, 'captureMode'), 'captureMode: the local runtime does not capture traffic');
    if (l.tls != null)
      ne(
        join(at, 'tls'),
        "tls: the inbound listener speaks the mesh's mutual TLS only; terminate TLS at a gateway",
      );
    if (l.connectionPool != null) ne(join(at, 'connectionPool'), 'connectionPool toward the app');
    const ep = typeof l.defaultEndpoint === 'string' ? l.defaultEndpoint : '';
    if (ep.startsWith('unix://'))
      ne(
        join(at, 'defaultEndpoint'),
        'unix domain socket endpoints: the port goes to the app as without a Sidecar',
      );
    const protocol =
      isObject(l.port) && typeof l.port.protocol === 'string' ? l.port.protocol.toUpperCase() : 'HTTP';
    if (!['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB'].includes(protocol))
      ne(join(join(at, 'port'), 'protocol'), `protocol ${protocol}: the inbound listener forwards HTTP`);
  });
  list(v.egress).forEach((l, i) => {
    const at = join(join(path, 'egress'), i);
    if (l.bind != null)
      ne(join(at, 'bind'), 'bind: the app reaches every egress host through the one outbound listener');
    if (l.captureMode != null)
      ne(join(at, 'captureMode'), 'captureMode: the local runtime does not capture traffic');
  });
  if (v.inboundConnectionPool != null) ne(join(path, 'inboundConnectionPool'), 'inboundConnectionPool');
  if (isObject(v.outboundTrafficPolicy) && v.outboundTrafficPolicy.egressProxy != null)
    ne(join(join(path, 'outboundTrafficPolicy'), 'egressProxy'), 'egressProxy');
}

export const sidecar: KindInfo = {
  group: 'networking.istio.io',
  kind: 'Sidecar',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  plural: 'sidecars',
  shortNames: [],
  spec: fields,
};
