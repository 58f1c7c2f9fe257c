// Bookinfo as compile sees it under `trellis up`, made deterministic for golden and simulation tests:
// the Services of samples/bookinfo/mesh.yaml, one ProxyNode per Workload replica (built as the local
// runtime builds them), and routing resources from YAML files with a fixed apply order.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { WORKLOAD_DEFAULTS, type WorkloadSpec } from '../../src/api/kinds/workload.ts';
import type { Resource } from '../../src/api/resource.ts';
import { validateText } from '../../src/api/validate.ts';
import type { CompileInput } from '../../src/compile/mesh-index.ts';
import type { ProxyNode } from '../../src/compile/snapshot.ts';

export const BOOKINFO = path.resolve(import.meta.dirname, '../../samples/bookinfo');

/** The proxies the Bookinfo scenarios are about. */
export const PRODUCTPAGE = 'productpage-v1-0.default';
export const REVIEWS_V2 = 'reviews-v2-0.default';
export const INGRESS = 'istio-ingressgateway-0.istio-system';

/**
 * The resources of a YAML text, validated as `trellis apply` validates them. The store would stamp
 * each with the time it was created, and age decides precedence (the oldest VirtualService for a host
 * wins): here the n-th resource applied is n seconds after a fixed epoch, so order is apply order.
 */
export function decodeResources(text: string, file: string, appliedBefore = 0): Resource[] {
  const result = validateText(text, file);
  if (result.errors.length) throw new Error(`${file}: ${JSON.stringify(result.errors)}`);
  return result.resources.map((r, i) => ({
    ...r,
    metadata: {
      ...r.metadata,
      creationTimestamp: new Date(Date.UTC(2026, 0, 1) + (appliedBefore + i) * 1000).toISOString(),
    },
  }));
}

/**
 * One ProxyNode per Workload replica, as `trellis up` starts them. The runtime takes each sidecar's
 * inbound port from port 0; here the n-th sidecar (mesh-file order) gets 15000 + n, so endpoints are
 * stable. Gateways keep their hostPort. Every proxy is healthy.
 */
export function proxyNodes(workloads: Resource<WorkloadSpec>[]): ProxyNode[] {
  const nodes: ProxyNode[] = [];
  let sidecars = 0;
  for (const w of workloads) {
    const spec = w.spec;
    const role = spec.role ?? WORKLOAD_DEFAULTS.role;
    for (let i = 0; i < (spec.replicas ?? WORKLOAD_DEFAULTS.replicas); i++) {
      const ports = (spec.ports ?? []).map((p) => ({
        name: p.name,
        port: p.port,
        protocol: p.protocol ?? WORKLOAD_DEFAULTS.protocol,
      }));
      nodes.push({
        id: `${w.metadata.name}-${i}.${w.metadata.namespace}`,
        role,
        workload: w.metadata.name,
        namespace: w.metadata.namespace,
        serviceAccount: spec.serviceAccount ?? WORKLOAD_DEFAULTS.serviceAccount,
        labels: spec.labels ?? {},
        address: '127.0.0.1',
        ...(role === 'sidecar' ? { inboundPort: 15000 + ++sidecars } : {}),
        ports,
        ...(role === 'gateway'
          ? {
              gatewayPorts: Object.fromEntries((spec.ports ?? []).map((p) => [p.port, p.hostPort ?? p.port])),
            }
          : {}),
        healthy: true,
      });
    }
  }
  return nodes;
}

/**
 * Bookinfo's Services and proxies from the mesh file, without the mesh file's own routing (its
 * Gateway and VirtualService), so that each scenario says exactly which routing it applies.
 */
export function bookinfoMesh(): { services: Resource[]; proxies: ProxyNode[] } {
  const file = path.join(BOOKINFO, 'mesh.yaml');
  const all = decodeResources(readFileSync(file, 'utf8'), file);
  return {
    services: all.filter((r) => r.apiVersion === 'v1' && r.kind === 'Service'),
    proxies: proxyNodes(all.filter((r) => r.kind === 'Workload') as Resource<WorkloadSpec>[]),
  };
}

/** Compile input for Bookinfo with the given routing resources applied; revision 1. */
export function bookinfoInput(routing: Resource[], proxies?: ProxyNode[]): CompileInput {
  const mesh = bookinfoMesh();
  return {
    revision: 1,
    resources: [...mesh.services, ...routing],
    proxies: proxies ?? mesh.proxies,
    mesh: { trustDomain: 'cluster.local' },
  };
}

/** Routing resources from files under samples/bookinfo/networking, applied in the order given. */
export function bookinfoRouting(...files: string[]): Resource[] {
  const out: Resource[] = [];
  for (const f of files) {
    const file = path.join(BOOKINFO, 'networking', f);
    out.push(...decodeResources(readFileSync(file, 'utf8'), file, out.length));
  }
  return out;
}

export function proxyOf(input: CompileInput, id: string): ProxyNode {
  const node = input.proxies.find((p) => p.id === id);
  if (!node) throw new Error(`no proxy ${id} in the Bookinfo mesh`);
  return node;
}
