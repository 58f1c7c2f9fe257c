// DestinationRule traffic policy → a cluster's settings. Istio's precedence: the top-level policy, its
// port-level settings for the cluster's port, then the subset's policy and the subset's port-level
// settings, each overriding whole fields (loadBalancer, connectionPool, outlierDetection, tls) of what
// came before. Istio's defaults are filled in here, so the proxy reads plain values.
import type {
  ClientTLSSettings,
  ConnectionPoolSettings,
  LoadBalancerSettings,
  OutlierDetection as OutlierDetectionSpec,
  TrafficPolicy,
} from '../api/kinds/index.ts';
import { parseDuration } from '../api/schema.ts';
import type { Credential, MeshIndex } from './mesh-index.ts';
import type {
  Cluster,
  ConnectionPool,
  LoadBalancerPolicy,
  LocalityLb,
  OutlierDetection,
  UpstreamTls,
} from './snapshot.ts';

export interface ResolvedPolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetectionSpec;
  tls?: ClientTLSSettings;
  retryBudget?: TrafficPolicy['retryBudget'];
}

function atPort(policy: TrafficPolicy, port: number): ResolvedPolicy {
  const out: ResolvedPolicy = {
    loadBalancer: policy.loadBalancer,
    connectionPool: policy.connectionPool,
    outlierDetection: policy.outlierDetection,
    tls: policy.tls,
    retryBudget: policy.retryBudget,
  };
  const p = policy.portLevelSettings?.find((s) => s.port?.number === port);
  if (p) {
    if (p.loadBalancer) out.loadBalancer = p.loadBalancer;
    if (p.connectionPool) out.connectionPool = p.connectionPool;
    if (p.outlierDetection) out.outlierDetection = p.outlierDetection;
    if (p.tls) out.tls = p.tls;
  }
  return out;
}

/** The policy for one port of a host, and one of its subsets when the route names one. */
export function resolvePolicy(
  top: TrafficPolicy | undefined,
  subset: TrafficPolicy | undefined,
  port: number,
): ResolvedPolicy {
  const base = top ? atPort(top, port) : {};
  if (!subset) return base;
  const over = atPort(subset, port);
  return {
    loadBalancer: over.loadBalancer ?? base.loadBalancer,
    connectionPool: over.connectionPool ?? base.connectionPool,
    outlierDetection: over.outlierDetection ?? base.outlierDetection,
    tls: over.tls ?? base.tls,
    retryBudget: over.retryBudget ?? base.retryBudget,
  };
}

const ms = (d: string | undefined): number | undefined => (d === undefined ? undefined : parseDuration(d));

export function loadBalancerPolicy(lb: LoadBalancerSettings | undefined): LoadBalancerPolicy {
  const ch = lb?.consistentHash;
  if (ch) {
    const hash = ch.httpHeaderName
      ? { header: ch.httpHeaderName.toLowerCase() }
      : ch.httpCookie
        ? {
            cookie: {
              name: ch.httpCookie.name,
              ...(ch.httpCookie.path ? { path: ch.httpCookie.path } : {}),
              ...(ch.httpCookie.ttl !== undefined ? { ttlMs: ms(ch.httpCookie.ttl) } : {}),
              ...(ch.httpCookie.attributes?.length ? { attributes: ch.httpCookie.attributes } : {}),
            },
          }
        : ch.useSourceIp
          ? { sourceIp: true as const }
          : ch.httpQueryParameterName
            ? { queryParameter: ch.httpQueryParameterName }
            : undefined;
    // A consistentHash without a key pins nothing (warned at apply): Envoy then picks at random.
    if (!hash) return { type: 'RANDOM' };
    if (ch.maglev) return { type: 'MAGLEV', hash, tableSize: ch.maglev.tableSize ?? 65537 };
    return {
      type: 'RING_HASH',
      hash,
      tableSize: ch.ringHash?.minimumRingSize ?? ch.minimumRingSize ?? 1024,
    };
  }
  switch (lb?.simple) {
    case 'ROUND_ROBIN':
      return { type: 'ROUND_ROBIN' };
    case 'RANDOM':
      return { type: 'RANDOM' };
    default:
      // PASSTHROUGH needs the original destination address, which transparent capture brings
      // (warned at apply until then).
      // UNSPECIFIED, LEAST_CONN and unset: pilot's default for Envoy is LEAST_REQUEST.
      return { type: 'LEAST_REQUEST' };
  }
}

/** Envoy's slow start, for the balancers that take it (ROUND_ROBIN, LEAST_REQUEST and the default). */
export function warmup(lb: LoadBalancerSettings | undefined): Cluster['warmup'] {
  if (lb?.consistentHash || lb?.simple === 'RANDOM') return undefined;
  const windowMs = ms(lb?.warmup?.duration ?? lb?.warmupDurationSecs);
  if (!windowMs) return undefined;
  return {
    windowMs,
    minimumPercent: lb?.warmup?.minimumPercent ?? 10,
    aggression: lb?.warmup?.aggression ?? 1,
  };
}

/** Locality-aware balancing: on when outlier detection is (Istio needs it to see endpoints fail). */
export function localityLb(
  lb: LoadBalancerSettings | undefined,
  outlier: OutlierDetectionSpec | undefined,
  /** meshConfig.localityLbSetting, for rules that set none. */
  mesh?: LoadBalancerSettings['localityLbSetting'],
): LocalityLb | undefined {
  const s = lb?.localityLbSetting ?? mesh;
  if (s?.enabled === false) return undefined;
  if (s?.distribute?.length)
    return { distribute: s.distribute.map((d) => ({ from: d.from ?? '*', to: d.to ?? {} })) };
  if (!outlier) return undefined;
  const out: LocalityLb = {};
  if (s?.failover?.length) out.failover = s.failover.map((f) => ({ from: f.from ?? '', to: f.to ?? '' }));
  if (s?.failoverPriority?.length) out.failoverPriority = s.failoverPriority;
  return out;
}

/** Mesh-wide connection defaults (meshConfig) a DestinationRule's own settings override. */
export interface MeshConnectionDefaults {
  connectTimeoutMs: number;
  h2UpgradePolicy: 'DO_NOT_UPGRADE' | 'UPGRADE';
  tcpKeepalive?: { probes?: number; time?: string; interval?: string };
}

export function connectionPool(
  cp: ConnectionPoolSettings | undefined,
  budget: TrafficPolicy['retryBudget'],
  mesh?: MeshConnectionDefaults,
): ConnectionPool | undefined {
  const meshSets =
    mesh && (mesh.connectTimeoutMs !== 10_000 || mesh.h2UpgradePolicy === 'UPGRADE' || mesh.tcpKeepalive);
  if (!cp && !budget && !meshSets) return undefined;
  const tcp = { ...(mesh?.tcpKeepalive ? { tcpKeepalive: mesh.tcpKeepalive } : {}), ...cp?.tcp };
  const http = cp?.http;
  const out: ConnectionPool = {};
  const set = <K extends keyof ConnectionPool>(k: K, v: ConnectionPool[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('maxConnections', tcp.maxConnections);
  set(
    'connectTimeoutMs',
    ms(tcp.connectTimeout) ?? (mesh && mesh.connectTimeoutMs !== 10_000 ? mesh.connectTimeoutMs : undefined),
  );
  if (tcp.tcpKeepalive) {
    const k = tcp.tcpKeepalive;
    out.tcpKeepalive = {
      ...(k.probes !== undefined ? { probes: k.probes } : {}),
      ...(ms(k.time) !== undefined ? { timeMs: ms(k.time) } : {}),
      ...(ms(k.interval) !== undefined ? { intervalMs: ms(k.interval) } : {}),
    };
  }
  set('maxConnectionDurationMs', ms(tcp.maxConnectionDuration));
  set('tcpIdleTimeoutMs', ms(tcp.idleTimeout));
  set('maxPendingRequests', http?.http1MaxPendingRequests);
  set('maxRequests', http?.http2MaxRequests);
  // 0 is Istio's "unlimited".
  if (http?.maxRequestsPerConnection) out.maxRequestsPerConnection = http.maxRequestsPerConnection;
  set('maxRetries', http?.maxRetries);
  // http.idleTimeout is the one Envoy applies to HTTP connections; tcp.idleTimeout (above) to proxied TCP.
  set('idleTimeoutMs', ms(http?.idleTimeout));
  const upgrade = http?.h2UpgradePolicy ?? 'DEFAULT';
  if (upgrade === 'UPGRADE' || (upgrade === 'DEFAULT' && mesh?.h2UpgradePolicy === 'UPGRADE'))
    out.h2Upgrade = true;
  // Trellis follows the client's protocol unless told otherwise: only an explicit false downgrades.
  else if (http?.useClientProtocol === false) out.http1Only = true;
  const ka = http?.http2KeepAlive;
  if (ka?.interval)
    out.http2KeepAlive = { intervalMs: ms(ka.interval)!, timeoutMs: ms(ka.timeout) ?? 20_000 };
  set('maxConcurrentStreams', http?.maxConcurrentStreams);
  if (budget) {
    out.retryBudget = {
      percent: budget.percent ?? 20,
      minRetryConcurrency: budget.minRetryConcurrency ?? 3,
    };
  }
  return out;
}

export function outlierDetection(od: OutlierDetectionSpec | undefined): OutlierDetection | undefined {
  if (!od) return undefined;
  // The deprecated consecutiveErrors counted gateway errors (Istio maps it so).
  const gateway = od.consecutiveGatewayErrors ?? od.consecutiveErrors ?? 0;
  return {
    consecutive5xxErrors: od.consecutive5xxErrors ?? (od.consecutiveErrors !== undefined ? 0 : 5),
    consecutiveGatewayErrors: gateway,
    consecutiveLocalOriginFailures: od.consecutiveLocalOriginFailures ?? 5,
    splitExternalLocalOriginErrors: od.splitExternalLocalOriginErrors ?? false,
    ...(od.outlierDetectionHttpErrorCodes?.length ? { errorCodes: od.outlierDetectionHttpErrorCodes } : {}),
    intervalMs: ms(od.interval) ?? 10_000,
    baseEjectionTimeMs: ms(od.baseEjectionTime) ?? 30_000,
    maxEjectionPercent: od.maxEjectionPercent ?? 10,
    minHealthPercent: od.minHealthPercent ?? 0,
  };
}

/**
 * `mesh` is the cluster's auto-mTLS setting, used unless the policy says otherwise. `credentials`
 * resolves `credentialName` in the DestinationRule's namespace.
 */
export function upstreamTls(
  tls: ClientTLSSettings | undefined,
  mesh: UpstreamTls,
  credential?: (name: string) => { name: string } & Credential,
): UpstreamTls {
  switch (tls?.mode) {
    case 'DISABLE':
      return { mode: 'DISABLE' };
    case 'SIMPLE':
    case 'MUTUAL':
      return {
        mode: tls.mode,
        ...(tls.sni ? { sni: tls.sni } : {}),
        ...(tls.caCertificates ? { caCertificates: tls.caCertificates } : {}),
        ...(tls.caCrl ? { caCrl: tls.caCrl } : {}),
        ...(tls.subjectAltNames?.length ? { subjectAltNames: tls.subjectAltNames } : {}),
        ...(tls.insecureSkipVerify ? { insecureSkipVerify: true } : {}),
        ...(tls.mode === 'MUTUAL' && tls.clientCertificate
          ? { clientCertificate: tls.clientCertificate, privateKey: tls.privateKey }
          : {}),
        ...(tls.credentialName && credential ? { credential: credential(tls.credentialName) } : {}),
      };
    default:
      return mesh;
  }
}

/** `credentialName` looked up in the DestinationRule's namespace of the credential store. */
export function credentialIn(index: MeshIndex, namespace: string | undefined) {
  return (name: string) => {
    const key = `${namespace ?? ''}/${name}`;
    return { name: key, ...index.credentials.get(key) };
  };
}
