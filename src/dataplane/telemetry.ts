// Istio's request metrics from the proxy's point of view. The source reports what it knows of the
// destination from the snapshot's endpoint; the destination learns the source workload from the peer
// header the client proxy sets (cf. Istio's metadata exchange) and its principal from mTLS.
import type { Endpoint, ProxyNode } from '../compile/snapshot.ts';
import type {
  IstioMetrics,
  IstioPeerLabels,
  IstioRequestLabels,
  IstioRequestSeries,
} from '../telemetry/istio.ts';

export interface PeerInfo {
  workload: string;
  namespace: string;
  app: string;
  version: string;
  principal: string;
}

export const UNKNOWN_PEER: PeerInfo = {
  workload: 'unknown',
  namespace: 'unknown',
  app: 'unknown',
  version: 'unknown',
  principal: 'unknown',
};

export function selfPeer(node: ProxyNode, identity: string): PeerInfo {
  return {
    workload: node.workload,
    namespace: node.namespace,
    app: node.labels.app ?? node.labels['app.kubernetes.io/name'] ?? 'unknown',
    version: node.labels.version ?? node.labels['app.kubernetes.io/version'] ?? 'unknown',
    principal: identity,
  };
}

export function endpointPeer(ep: Endpoint | undefined): PeerInfo {
  if (!ep) return UNKNOWN_PEER;
  return {
    workload: ep.workload ?? 'unknown',
    namespace: ep.namespace ?? 'unknown',
    app: ep.labels?.app ?? 'unknown',
    version: ep.labels?.version ?? 'unknown',
    principal: ep.identity ?? 'unknown',
  };
}

/** The peer header: `workload;namespace;app;version`, each part URI-encoded. */
export function encodePeer(p: PeerInfo): string {
  return [p.workload, p.namespace, p.app, p.version].map(encodeURIComponent).join(';');
}

export function decodePeer(header: string | undefined, principal: string | undefined): PeerInfo {
  const parts = header?.split(';').map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return 'unknown';
    }
  });
  return {
    workload: parts?.[0] || 'unknown',
    namespace: parts?.[1] || 'unknown',
    app: parts?.[2] || 'unknown',
    version: parts?.[3] || 'unknown',
    principal: principal ?? 'unknown',
  };
}

/** Decoded peers seen before; a proxy has few callers, the bound only guards against a flood. */
const PEER_CACHE_MAX = 10_000;

/** What one exchange ended with, as the pipeline reports it. */
export interface ExchangeOutcome {
  /** FQDN of the destination service, or `unknown`. */
  service: string;
  /** destination_service_name, when it is not the FQDN's first label (PassthroughCluster). */
  serviceName?: string;
  code: number;
  flags: string;
  mtls: boolean;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
  /** A gRPC exchange: its status (grpc_response_status) and the messages each way. */
  grpc?: { status: string; requestMessages: number; responseMessages: number };
}

/** The labels that pick one series: who called whom, and how it went. */
interface SeriesKey {
  reporter: 'source' | 'destination';
  source: PeerInfo;
  destination: PeerInfo;
  service: string;
  serviceName: string | undefined;
  protocol: string;
  code: number;
  grpcStatus: string | undefined;
  flags: string;
  mtls: boolean;
}

/** The labels HTTP and TCP metrics share, from who reported, who called whom and how it went. */
export function peerLabels(
  reporter: 'source' | 'destination',
  source: PeerInfo,
  destination: PeerInfo,
  service: string,
  flags: string,
  mtls: boolean,
  /** The PassthroughCluster's name where `service` is the host the app asked for. */
  serviceName?: string,
): IstioPeerLabels {
  const svcName = service.split('.')[0] ?? 'unknown';
  const svcNs = service.split('.')[1] ?? 'unknown';
  return {
    reporter,
    source_workload: source.workload,
    source_workload_namespace: source.namespace,
    source_principal: source.principal,
    source_app: source.app,
    source_version: source.version,
    source_cluster: 'Kubernetes',
    destination_workload: destination.workload,
    destination_workload_namespace: destination.namespace,
    destination_principal: destination.principal,
    destination_app: destination.app,
    destination_version: destination.version,
    destination_service: service,
    destination_service_name: serviceName ?? (service === 'unknown' ? 'unknown' : svcName),
    destination_service_namespace: service === 'unknown' ? 'unknown' : svcNs,
    destination_cluster: 'Kubernetes',
    response_flags: flags,
    connection_security_policy: reporter === 'source' ? 'unknown' : mtls ? 'mutual_tls' : 'none',
  };
}

function requestSeries(metrics: IstioMetrics, r: SeriesKey): IstioRequestSeries {
  const labels: IstioRequestLabels = {
    ...peerLabels(r.reporter, r.source, r.destination, r.service, r.flags, r.mtls, r.serviceName),
    request_protocol: r.protocol,
    response_code: r.code,
    grpc_response_status: r.grpcStatus,
  };
  return metrics.requestSeries(labels);
}

/**
 * Istio's request metrics without a label object or key of twenty fields per request: series are
 * cached per peer (one object per endpoint, or per distinct peer header and principal) and the few
 * fields that vary from one request to the next.
 */
export class RequestTelemetry {
  readonly metrics: IstioMetrics;
  private readonly self: PeerInfo;
  private readonly series = new WeakMap<PeerInfo, Map<string, IstioRequestSeries>>();
  private readonly peers = new Map<string, PeerInfo>();

  constructor(metrics: IstioMetrics, self: PeerInfo) {
    this.metrics = metrics;
    this.self = self;
  }

  /** The calling workload, from the peer header its proxy sent and the principal mTLS proved. */
  peer(header: string | undefined, principal: string | undefined): PeerInfo {
    const key = `${principal}\n${header}`;
    let p = this.peers.get(key);
    if (p === undefined) {
      if (this.peers.size >= PEER_CACHE_MAX) this.peers.clear();
      p = decodePeer(header, principal);
      this.peers.set(key, p);
    }
    return p;
  }

  record(reporter: 'source' | 'destination', peer: PeerInfo, r: ExchangeOutcome): void {
    let byPeer = this.series.get(peer);
    if (byPeer === undefined) {
      byPeer = new Map();
      this.series.set(peer, byPeer);
    }
    const grpc = r.grpc;
    let key = `${reporter}|${r.service}|${r.serviceName ?? ''}|${r.code}|${r.flags}|${r.mtls}`;
    if (grpc) key += `|grpc|${grpc.status}`;
    let s = byPeer.get(key);
    if (s === undefined) {
      const source = reporter === 'source';
      s = requestSeries(this.metrics, {
        reporter,
        source: source ? this.self : peer,
        destination: source ? peer : this.self,
        service: r.service,
        serviceName: r.serviceName,
        protocol: grpc ? 'grpc' : 'http',
        code: r.code,
        grpcStatus: grpc?.status,
        flags: r.flags,
        mtls: r.mtls,
      });
      byPeer.set(key, s);
    }
    s.requests.inc();
    s.duration.observe(r.durationMs);
    s.requestBytes.observe(r.requestBytes);
    s.responseBytes.observe(r.responseBytes);
    if (grpc) {
      s.requestMessages!.inc(grpc.requestMessages);
      s.responseMessages!.inc(grpc.responseMessages);
    }
  }
}
