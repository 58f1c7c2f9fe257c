// DestinationRule traffic policies: load balancing, connection pools, outlier detection, client TLS,
// per-port overrides, tunnelling and PROXY protocol.
import {
  array,
  boolean,
  type Ctx,
  duration,
  fail,
  int,
  isObject,
  join,
  map,
  number,
  object,
  string,
  uint32,
  type Validator,
  warn,
} from '../schema.ts';
import {
  host,
  INT32_MAX,
  intPercent,
  NOT_ENFORCED,
  nonEmptyString,
  type PortSelector,
  portNumber,
  portSelector,
  stringList,
} from './common.ts';

export type SimpleLB =
  | 'UNSPECIFIED'
  | 'LEAST_CONN'
  | 'RANDOM'
  | 'PASSTHROUGH'
  | 'ROUND_ROBIN'
  | 'LEAST_REQUEST';

export interface HTTPCookie {
  name: string;
  path?: string;
  /** Absent or 0s: a session cookie. */
  ttl?: string;
  attributes?: { name: string; value?: string }[];
}

export interface ConsistentHashLB {
  httpHeaderName?: string;
  httpCookie?: HTTPCookie;
  useSourceIp?: boolean;
  httpQueryParameterName?: string;
  /** The default algorithm. */
  ringHash?: { minimumRingSize?: number };
  maglev?: { tableSize?: number };
  /** Deprecated: use ringHash.minimumRingSize. */
  minimumRingSize?: number;
}

export interface LocalityLoadBalancerSetting {
  distribute?: { from?: string; to?: Record<string, number> }[];
  failover?: { from?: string; to?: string }[];
  failoverPriority?: string[];
  enabled?: boolean;
}

export interface ZoneAwareLbSetting {
  enabled?: boolean;
  failover?: { from?: string; to?: string }[];
  failoverPriority?: string[];
  minClusterSize?: number;
}

export interface WarmupConfiguration {
  duration: string;
  /** Default 10. */
  minimumPercent?: number;
  /** Default 1.0. */
  aggression?: number;
}

export interface LoadBalancerSettings {
  /** Unset: LEAST_REQUEST. */
  simple?: SimpleLB;
  consistentHash?: ConsistentHashLB;
  localityLbSetting?: LocalityLoadBalancerSetting;
  zoneAwareLbSetting?: ZoneAwareLbSetting;
  /** Deprecated: use warmup. */
  warmupDurationSecs?: string;
  warmup?: WarmupConfiguration;
}

export interface TCPSettings {
  maxConnections?: number;
  connectTimeout?: string;
  tcpKeepalive?: { probes?: number; time?: string; interval?: string };
  maxConnectionDuration?: string;
  /** Default 1h; 0s disables. */
  idleTimeout?: string;
}

export interface HTTPSettings {
  http1MaxPendingRequests?: number;
  http2MaxRequests?: number;
  /** 0 = unlimited; 1 disables keep-alive. */
  maxRequestsPerConnection?: number;
  maxRetries?: number;
  idleTimeout?: string;
  h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  useClientProtocol?: boolean;
  maxConcurrentStreams?: number;
  http2KeepAlive?: { interval?: string; timeout?: string };
}

export interface ConnectionPoolSettings {
  tcp?: TCPSettings;
  http?: HTTPSettings;
}

export interface OutlierDetection {
  /** Deprecated: use consecutiveGatewayErrors or consecutive5xxErrors. */
  consecutiveErrors?: number;
  splitExternalLocalOriginErrors?: boolean;
  consecutiveLocalOriginFailures?: number;
  consecutiveGatewayErrors?: number;
  /** Default 5; 0 disables. */
  consecutive5xxErrors?: number;
  /** Default 10s. */
  interval?: string;
  /** Default 30s. */
  baseEjectionTime?: string;
  /** Default 10. */
  maxEjectionPercent?: number;
  minHealthPercent?: number;
  outlierDetectionHttpErrorCodes?: number[];
}

export type ClientTLSMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';

export interface ClientTLSSettings {
  mode?: ClientTLSMode;
  clientCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  credentialName?: string;
  subjectAltNames?: string[];
  sni?: string;
  insecureSkipVerify?: boolean;
  caCrl?: string;
}

export interface TunnelSettings {
  /** CONNECT (default) or POST. */
  protocol?: string;
  targetHost: string;
  targetPort: number;
}

export interface RetryBudget {
  /** Default 20. */
  percent?: number;
  /** Default 3. */
  minRetryConcurrency?: number;
  budgetInterval?: string;
}

export interface PortTrafficPolicy {
  port?: PortSelector;
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}

export interface TrafficPolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
  /** Override the policy above for single ports. */
  portLevelSettings?: PortTrafficPolicy[];
  tunnel?: TunnelSettings;
  proxyProtocol?: { version?: 'V1' | 'V2' };
  retryBudget?: RetryBudget;
}

// ---- load balancing --------------------------------------------------------------------------------

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

const hashKeys = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'];

const consistentHash: Validator = object(
  {
    httpHeaderName: nonEmptyString(),
    httpCookie: object(
      {
        name: nonEmptyString(),
        path: string(),
        ttl: duration({ minMs: 0 }),
        attributes: array(object({ name: nonEmptyString(), value: string() }, { required: ['name'] })),
      },
      { required: ['name'] },
    ),
    useSourceIp: boolean(),
    httpQueryParameterName: nonEmptyString(),
    ringHash: object({ minimumRingSize: uint32({ max: Number.MAX_SAFE_INTEGER }) }),
    maglev: object({
      tableSize: uint32({
        // Envoy's limit for a maglev table.
        max: 5_000_011,
        check: (v, path, ctx) => {
          if (!isPrime(v)) fail(ctx, path, `maglev tableSize ${v} must be a prime number, e.g. 65537`);
        },
      }),
    }),
    minimumRingSize: uint32({ max: Number.MAX_SAFE_INTEGER }),
  },
  {
    oneOf: [hashKeys, ['ringHash', 'maglev'], ['maglev', 'minimumRingSize']],
    deprecated: { minimumRingSize: 'use ringHash.minimumRingSize' },
    check: (v, path, ctx) => {
      if (!hashKeys.some((k) => v[k] != null && v[k] !== false)) {
        warn(ctx, path, `no hash key is set (one of ${hashKeys.join(', ')}), so requests are not pinned`);
      }
    },
  },
);

/** `region/zone/subzone`; `*` may only stand for the whole last part given. */
function locality(what: string): Validator {
  return string({
    check: (v, path, ctx) => {
      const parts = v.split('/');
      const wildcard = parts.findIndex((p) => p.includes('*'));
      if (
        v === '' ||
        parts.length > 3 ||
        (wildcard >= 0 && (parts[wildcard] !== '*' || wildcard !== parts.length - 1))
      ) {
        fail(
          ctx,
          path,
          `${what} ${JSON.stringify(v)} is not valid: expected "region[/zone[/subzone]]" with at most one "*" standing for the last part`,
        );
      }
    },
  });
}

const failover: Validator = object(
  { from: nonEmptyString(), to: nonEmptyString() },
  {
    check: (v, path, ctx) => {
      for (const k of ['from', 'to']) {
        if (typeof v[k] === 'string' && (v[k] as string).includes('/')) {
          fail(
            ctx,
            join(path, k),
            `locality lb failover only specifies regions, found ${JSON.stringify(v[k])}`,
          );
        }
      }
      if (v.from !== undefined && v.from === v.to) {
        fail(ctx, path, 'locality lb failover settings must specify different regions');
      }
    },
  },
);

function checkDistribute(v: unknown, path: string, ctx: Ctx): void {
  if (!Array.isArray(v)) return;
  const froms = new Set<string>();
  v.forEach((d, i) => {
    if (!isObject(d)) return;
    const at = join(path, i);
    if (typeof d.from === 'string') {
      if (froms.has(d.from))
        fail(ctx, join(at, 'from'), `locality ${d.from} overlaps with a previous distribute entry`);
      froms.add(d.from);
    }
    if (isObject(d.to)) {
      const total = Object.values(d.to).reduce<number>((s, w) => s + (typeof w === 'number' ? w : 0), 0);
      if (total !== 100) fail(ctx, join(at, 'to'), `total weight ${total} != 100`);
    }
  });
}

const distributeList = array(
  object({ from: locality('locality'), to: map(uint32(), { key: locality('locality') }) }),
);

/** Node sets the keepalive's idle time only; probes and interval stay the system's. */
export const tcpKeepalive: Validator = object(
  { probes: uint32(), time: duration(), interval: duration() },
  { notEnforced: ['probes', 'interval'] },
);

export const localityLbSetting: Validator = object(
  {
    distribute: (v, path, ctx) => {
      distributeList(v, path, ctx);
      checkDistribute(v, path, ctx);
    },
    failover: array(failover),
    failoverPriority: stringList(nonEmptyString()),
    enabled: boolean(),
  },
  { oneOf: [['distribute', 'failover', 'failoverPriority']] },
);

const zoneAwareLbSetting: Validator = object({
  enabled: boolean(),
  failover: array(failover),
  failoverPriority: stringList(nonEmptyString()),
  minClusterSize: uint32(),
});

const loadBalancer: Validator = object(
  {
    simple: string({
      enum: ['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'],
    }),
    consistentHash,
    localityLbSetting,
    zoneAwareLbSetting,
    warmupDurationSecs: duration(),
    warmup: object(
      {
        duration: duration(),
        minimumPercent: number({ min: 0, max: 100 }),
        aggression: number({ min: 1 }),
      },
      { required: ['duration'] },
    ),
  },
  {
    oneOf: [
      ['simple', 'consistentHash'],
      ['warmupDurationSecs', 'warmup'],
    ],
    deprecated: { warmupDurationSecs: 'use warmup.duration' },
    check: (v, path, ctx) => {
      if (v.simple === 'LEAST_CONN')
        warn(ctx, join(path, 'simple'), 'LEAST_CONN is deprecated: use LEAST_REQUEST');
      if (v.simple === 'PASSTHROUGH')
        warn(
          ctx,
          join(path, 'simple'),
          `${NOT_ENFORCED}: PASSTHROUGH needs the original destination address, which Trellis does not capture yet; requests are balanced with LEAST_REQUEST`,
        );
      if (v.zoneAwareLbSetting != null)
        warn(ctx, join(path, 'zoneAwareLbSetting'), `${NOT_ENFORCED}: zoneAwareLbSetting`);
      const warm = v.warmup ?? v.warmupDurationSecs;
      if (warm != null && (v.consistentHash != null || v.simple === 'RANDOM'))
        warn(
          ctx,
          join(path, v.warmup != null ? 'warmup' : 'warmupDurationSecs'),
          'warmup applies to ROUND_ROBIN and LEAST_REQUEST only (as in Envoy): it has no effect here',
        );
    },
  },
);

// ---- connection pool, outlier detection ------------------------------------------------------------

const nonNegativeInt32 = (what: string): Validator =>
  int({
    max: INT32_MAX,
    check: (v, path, ctx) => {
      if (v < 0) fail(ctx, path, `${what} must be non-negative, found ${v}`);
    },
  });

export const connectionPool: Validator = object(
  {
    tcp: object({
      maxConnections: nonNegativeInt32('max connections'),
      connectTimeout: duration(),
      tcpKeepalive,
      maxConnectionDuration: duration(),
      idleTimeout: duration({ minMs: 0 }),
    }),
    http: object(
      {
        http1MaxPendingRequests: nonNegativeInt32('http1 max pending requests'),
        http2MaxRequests: nonNegativeInt32('http2 max requests'),
        maxRequestsPerConnection: nonNegativeInt32('max requests per connection'),
        maxRetries: nonNegativeInt32('max retries'),
        idleTimeout: duration({ minMs: 0 }),
        h2UpgradePolicy: string({ enum: ['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'] }),
        useClientProtocol: boolean(),
        maxConcurrentStreams: nonNegativeInt32('max concurrent streams'),
        http2KeepAlive: object({ interval: duration(), timeout: duration() }),
      },
      {
        check: (v, path, ctx) => {
          if (v.useClientProtocol === false && v.h2UpgradePolicy === 'UPGRADE')
            warn(
              ctx,
              join(path, 'useClientProtocol'),
              'h2UpgradePolicy UPGRADE sends HTTP/2 upstream whatever useClientProtocol says',
            );
        },
      },
    ),
  },
  {
    check: (v, path, ctx) => {
      if (v.tcp == null && v.http == null)
        fail(ctx, path, 'connection pool must have at least one field (tcp or http)');
    },
  },
);

const outlierDetection: Validator = object(
  {
    consecutiveErrors: nonNegativeInt32('consecutive errors'),
    splitExternalLocalOriginErrors: boolean(),
    consecutiveLocalOriginFailures: uint32(),
    consecutiveGatewayErrors: uint32(),
    consecutive5xxErrors: uint32(),
    interval: duration(),
    baseEjectionTime: duration(),
    maxEjectionPercent: intPercent(),
    minHealthPercent: intPercent(),
    outlierDetectionHttpErrorCodes: array(int({ min: 100, max: 599 }), { unique: true }),
  },
  {
    deprecated: { consecutiveErrors: 'use consecutiveGatewayErrors or consecutive5xxErrors' },
    check: (v, path, ctx) => {
      if (typeof v.consecutiveLocalOriginFailures === 'number' && v.consecutiveLocalOriginFailures > 0) {
        if (v.splitExternalLocalOriginErrors !== true) {
          fail(
            ctx,
            join(path, 'consecutiveLocalOriginFailures'),
            'consecutiveLocalOriginFailures is set, but splitExternalLocalOriginErrors is not true',
          );
        }
      }
    },
  },
);

// ---- client TLS ------------------------------------------------------------------------------------

const certFields = [
  'clientCertificate',
  'privateKey',
  'caCertificates',
  'credentialName',
  'subjectAltNames',
  'caCrl',
];

const clientTls: Validator = object(
  {
    mode: string({ enum: ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] }),
    clientCertificate: nonEmptyString(),
    privateKey: nonEmptyString(),
    caCertificates: nonEmptyString(),
    credentialName: nonEmptyString(),
    subjectAltNames: stringList(nonEmptyString()),
    sni: nonEmptyString(),
    insecureSkipVerify: boolean(),
    caCrl: nonEmptyString(),
  },
  {
    check: (v, path, ctx) => {
      const mode = v.mode ?? 'DISABLE';
      if (mode === 'ISTIO_MUTUAL') {
        const extra = certFields.filter((k) => v[k] != null);
        if (extra.length > 0) {
          fail(ctx, path, `ISTIO_MUTUAL uses the mesh's own certificates: remove ${extra.join(', ')}`);
        }
      }
      if (mode === 'MUTUAL' && v.credentialName == null) {
        if (v.clientCertificate == null)
          fail(ctx, join(path, 'clientCertificate'), 'client certificate required for mutual tls');
        if (v.privateKey == null) fail(ctx, join(path, 'privateKey'), 'private key required for mutual tls');
      }
      if (
        (mode === 'SIMPLE' || mode === 'MUTUAL') &&
        v.caCertificates == null &&
        v.credentialName == null &&
        v.insecureSkipVerify !== true
      ) {
        warn(
          ctx,
          path,
          `${mode} TLS without caCertificates or credentialName does not verify the server certificate`,
        );
      }
    },
  },
);

// ---- the policy ------------------------------------------------------------------------------------

const portTrafficPolicy: Validator = object(
  { port: portSelector(), loadBalancer, connectionPool, outlierDetection, tls: clientTls },
  {
    check: (v, path, ctx) => {
      if (!isObject(v.port) || typeof v.port.number !== 'number') {
        fail(ctx, join(path, 'port'), 'port-level settings need a port number');
      }
    },
  },
);

function portLevelSettings(): Validator {
  const list = array(portTrafficPolicy);
  return (v, path, ctx) => {
    list(v, path, ctx);
    if (!Array.isArray(v)) return;
    const seen = new Map<number, number>();
    v.forEach((p, i) => {
      const n =
        isObject(p) && isObject(p.port) && typeof p.port.number === 'number' ? p.port.number : undefined;
      if (n === undefined) return;
      const first = seen.get(n);
      if (first !== undefined) {
        fail(
          ctx,
          join(join(join(path, i), 'port'), 'number'),
          `port ${n} already has settings at index ${first}`,
        );
      } else seen.set(n, i);
    });
  };
}

export const trafficPolicy: Validator = object(
  {
    loadBalancer,
    connectionPool,
    outlierDetection,
    tls: clientTls,
    portLevelSettings: portLevelSettings(),
    tunnel: object(
      {
        protocol: string({
          check: (v, path, ctx) => {
            if (!['CONNECT', 'POST'].includes(v.toUpperCase())) {
              fail(ctx, path, `tunnel protocol ${JSON.stringify(v)} is not valid: expected CONNECT or POST`);
            }
          },
        }),
        targetHost: host({ allowIP: true, what: 'tunnel target host' }),
        targetPort: portNumber(),
      },
      { required: ['targetHost', 'targetPort'] },
    ),
    proxyProtocol: object({ version: string({ enum: ['V1', 'V2'] }) }),
    retryBudget: object(
      {
        percent: number({ min: 0, max: 100 }),
        minRetryConcurrency: uint32(),
        budgetInterval: duration(),
      },
      { notEnforced: ['budgetInterval'] },
    ),
  },
  {
    notEnforced: ['tunnel', 'proxyProtocol'],
    check: (v, path, ctx) => {
      const lb = isObject(v.loadBalancer) ? v.loadBalancer : {};
      if (lb.consistentHash != null && (lb.localityLbSetting != null || v.outlierDetection != null))
        warn(
          ctx,
          join(join(path, 'loadBalancer'), 'consistentHash'),
          `${NOT_ENFORCED}: locality-aware balancing together with consistentHash; requests are hashed over every endpoint`,
        );
    },
  },
);
