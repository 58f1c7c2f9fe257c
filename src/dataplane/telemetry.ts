// Istio's request metrics from the proxy's point of view. The source reports what it knows of the
// destination from the snapshot's endpoint; the destination learns the source workload from the peer
// header the client proxy sets (cf. Istio's metadata exchange) and its principal from mTLS.
import type { Endpoint, ProxyNode } from '../compile/snapshot.ts';
import type { IstioMetrics, IstioRequestLabels } from '../telemetry/istio.ts';

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

export interface RequestRecord {
  reporter: 'source' | 'destination';
  source: PeerInfo;
  destination: PeerInfo;
  /** FQDN of the destination service, or `unknown`. */
  service: string;
  protocol: string;
  code: number;
  flags: string;
  mtls: boolean;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
}

export function recordRequest(metrics: IstioMetrics, r: RequestRecord): void {
  const svcName = r.service.split('.')[0] ?? 'unknown';
  const svcNs = r.service.split('.')[1] ?? 'unknown';
  const labels: IstioRequestLabels = {
    reporter: r.reporter,
    source_workload: r.source.workload,
    source_workload_namespace: r.source.namespace,
    source_principal: r.source.principal,
    source_app: r.source.app,
    source_version: r.source.version,
    source_cluster: 'Kubernetes',
    destination_workload: r.destination.workload,
    destination_workload_namespace: r.destination.namespace,
    destination_principal: r.destination.principal,
    destination_app: r.destination.app,
    destination_version: r.destination.version,
    destination_service: r.service,
    destination_service_name: r.service === 'unknown' ? 'unknown' : svcName,
    destination_service_namespace: r.service === 'unknown' ? 'unknown' : svcNs,
    destination_cluster: 'Kubernetes',
    request_protocol: r.protocol,
    response_code: r.code,
    response_flags: r.flags,
    connection_security_policy: r.reporter === 'source' ? 'unknown' : r.mtls ? 'mutual_tls' : 'none',
  };
  const s = metrics.requestSeries(labels);
  s.requests.inc();
  s.duration.observe(r.durationMs);
  s.requestBytes.observe(r.requestBytes);
  s.responseBytes.observe(r.responseBytes);
}
