// Istio's protocol selection for a port (pkg/config/protocol): a Service port's `appProtocol`, else
// the prefix of its name (`grpc`, `grpc-web`, `http2-api`), case-insensitive. A Trellis Workload port
// may say it itself (`protocol: GRPC`). Which ports speak HTTP/2 decides how the sidecar talks to
// its app: HTTP/2 without TLS (h2c) for HTTP2 and GRPC, as Istio's inbound cluster does. GRPC-WEB
// stays as the client sent it: Trellis has no gRPC-Web translation to turn it into gRPC.
import type { MeshIndex } from './mesh-index.ts';
import type { ProxyNode } from './snapshot.ts';

const KNOWN = new Set([
  'TCP',
  'UDP',
  'GRPC',
  'GRPC-WEB',
  'HTTP',
  'HTTP_PROXY',
  'HTTP2',
  'HTTPS',
  'TLS',
  'MONGO',
  'REDIS',
  'MYSQL',
]);

const HTTP2 = new Set(['HTTP2', 'GRPC']);

/** The protocol a port declares, upper-case; undefined when it leaves it to detection. */
export function portProtocol(name: string | undefined, appProtocol: string | undefined): string | undefined {
  const app = appProtocol?.toUpperCase();
  if (app && KNOWN.has(app)) return app;
  // Kubernetes' standard application protocols (KEP-3726).
  if (app === 'KUBERNETES.IO/H2C') return 'HTTP2';
  if (app === 'KUBERNETES.IO/WS') return 'HTTP';
  if (app === 'KUBERNETES.IO/WSS') return 'HTTPS';
  if (!name) return undefined;
  const lower = name.toLowerCase();
  // `grpc-web` is a protocol of its own, not `grpc` with a suffix.
  if (lower === 'grpc-web' || lower.startsWith('grpc-web-')) return 'GRPC-WEB';
  const dash = name.indexOf('-');
  const prefix = (dash < 0 ? name : name.slice(0, dash)).toUpperCase();
  return KNOWN.has(prefix) ? prefix : undefined;
}

/** The workload ports of `node` that speak HTTP/2 to the app: by the Workload, or a Service port on them. */
export function http2Ports(index: MeshIndex, node: ProxyNode): Set<number> {
  const out = new Set<number>();
  for (const p of node.ports) if (p.protocol && HTTP2.has(p.protocol.toUpperCase())) out.add(p.port);
  for (const svc of index.services.values()) {
    for (const inst of svc.instances) {
      if (inst.node.id !== node.id) continue;
      for (const sp of svc.ports) {
        const target = inst.targetPorts.get(sp.port);
        const proto = portProtocol(sp.name, sp.appProtocol);
        if (target !== undefined && proto && HTTP2.has(proto)) out.add(target);
      }
    }
  }
  return out;
}
