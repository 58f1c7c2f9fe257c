// A sidecar's inbound side: the mesh-facing mTLS listener (the service ports it serves, its
// PeerAuthentication mode, its AuthorizationPolicies) and one cluster per workload port toward the app beside it.
import { authorizationFor } from './authorization.ts';
import type { MeshIndex } from './mesh-index.ts';
import { inboundMtls } from './peer-authentication.ts';
import { jwtRules } from './request-authentication.ts';
import { entryInboundServices } from './service-entries.ts';
import type { Cluster, InboundService, Listener, ProxyNode } from './snapshot.ts';
import { tcpAuthorization } from './tcp-authorization.ts';

/** Proxy id → the service ports it serves, worked out once per index for every proxy. */
const servedByIndex = new WeakMap<MeshIndex, Map<string, InboundService[]>>();

function servedBy(index: MeshIndex): Map<string, InboundService[]> {
  let inbound = servedByIndex.get(index);
  if (inbound) return inbound;
  inbound = new Map();
  for (const svc of index.services.values()) {
    for (const inst of svc.instances) {
      let list = inbound.get(inst.node.id);
      if (!list) {
        list = [];
        inbound.set(inst.node.id, list);
      }
      for (const [port, targetPort] of inst.targetPorts) list.push({ host: svc.fqdn, port, targetPort });
    }
  }
  for (const [id, entries] of entryInboundServices(index))
    inbound.set(id, [...(inbound.get(id) ?? []), ...entries]);
  for (const list of inbound.values())
    list.sort((a, b) => (a.host === b.host ? a.port - b.port : a.host < b.host ? -1 : 1));
  servedByIndex.set(index, inbound);
  return inbound;
}

/** `ingress`: workload port → app port, from the proxy's Sidecar ingress listeners' defaultEndpoint. */
export function sidecarInbound(
  index: MeshIndex,
  node: ProxyNode,
  ingress?: ReadonlyMap<number, number>,
): Listener {
  const services = servedBy(index).get(node.id) ?? [];
  const targets = new Set<string>();
  for (const s of services) {
    const svc = index.services.get(s.host);
    if (svc) targets.add(`${svc.namespace}/${svc.name}`);
  }
  const jwt = jwtRules(index, { node, targets: [...targets] });
  const authorization = authorizationFor(index, node);
  const tcpAuthz = authorization && tcpAuthorization(authorization);
  return {
    name: 'inbound',
    type: 'inbound',
    ...inboundMtls(index.peerAuthentications, node, index.meshConfig.rootNamespace),
    services,
    ports: node.ports.map((p) => p.port).sort((a, b) => a - b),
    ...(ingress && { endpoints: Object.fromEntries([...ingress].map(([p, to]) => [String(p), to])) }),
    ...(jwt && { jwtRules: jwt }),
    ...(authorization && { authorization }),
    ...(tcpAuthz !== authorization && { tcpAuthorization: tcpAuthz }),
  };
}

export function inboundClusters(
  node: ProxyNode,
  ingress?: ReadonlyMap<number, number>,
  http2: ReadonlySet<number> = new Set(),
): Cluster[] {
  return node.ports
    .map((p) => p.port)
    .sort((a, b) => a - b)
    .map((port) => ({
      name: `inbound|${port}||`,
      direction: 'inbound' as const,
      port,
      lb: { type: 'ROUND_ROBIN' as const },
      tls: { mode: 'DISABLE' as const },
      ...(http2.has(port) ? { http2: true } : {}),
      // The app beside the proxy; the proxy maps the workload port to where the app really listens.
      endpoints: [{ address: '127.0.0.1', port: ingress?.get(port) ?? port, healthy: node.healthy }],
    }));
}
