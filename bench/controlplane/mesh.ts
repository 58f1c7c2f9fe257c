// The synthetic mesh the control-plane benchmark runs: N services spread over namespaces, one Workload
// per service (as in samples/bookinfo/mesh.yaml), a DestinationRule and a VirtualService for every
// tenth service, and the `hub` VirtualService whose marker each measured apply changes. Every sidecar
// can reach every service (no scoping), so a change to `hub` touches every proxy's snapshot.
import type { ProxyNode } from '../../src/compile/snapshot.ts';

export const HUB_SERVICE = 'svc-0';
export const HUB_NAMESPACE = 'ns-0';
export const HUB_VHOST = `${HUB_SERVICE}.${HUB_NAMESPACE}.svc.cluster.local:9080`;
/** The header whose exact-match value carries the round marker in the hub's first route. */
export const MARKER_HEADER = 'x-bench-round';

export function namespaceCount(services: number): number {
  return Math.max(1, Math.min(10, services));
}

function namespaceOf(i: number, services: number): string {
  return `ns-${i % namespaceCount(services)}`;
}

/** How many proxies (replicas) run service i's workload when P proxies are spread round-robin. */
function replicasOf(i: number, services: number, proxies: number): number {
  return Math.floor(proxies / services) + (i < proxies % services ? 1 : 0);
}

/** Services, Workloads, DestinationRules and VirtualServices as one YAML stream. */
export function meshYaml(services: number, proxies: number): string {
  const docs: string[] = [];
  for (let i = 0; i < services; i++) {
    const name = `svc-${i}`;
    const ns = namespaceOf(i, services);
    docs.push(`apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}, labels: {app: ${name}}}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 9080, targetPort: 9080}]`);
    docs.push(`apiVersion: trellis.dev/v1alpha1
kind: Workload
metadata: {name: ${name}-v1, namespace: ${ns}}
spec:
  command: node
  args: [main.ts]
  labels: {app: ${name}, version: v1}
  serviceAccount: ${name}
  replicas: ${Math.max(1, replicasOf(i, services, proxies))}
  ports: [{name: http, port: 9080, protocol: HTTP}]`);
    if (i % 10 === 0) {
      docs.push(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: ${ns}}
spec:
  host: ${name}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}`);
      if (i !== 0) {
        docs.push(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}, namespace: ${ns}}
spec:
  hosts: [${name}]
  http:
  - name: canary
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: ${name}, subset: v2}}]
  - timeout: 5s
    route:
    - {destination: {host: ${name}, subset: v1}, weight: 90}
    - {destination: {host: ${name}, subset: v2}, weight: 10}`);
      }
    }
  }
  docs.push(hubYaml(0));
  return `${docs.join('\n---\n')}\n`;
}

/** The VirtualService each measured apply rewrites: round r puts "r" in the first route's match. */
export function hubYaml(round: number): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hub, namespace: ${HUB_NAMESPACE}}
spec:
  hosts: [${HUB_SERVICE}]
  http:
  - name: round
    match: [{headers: {${MARKER_HEADER}: {exact: "${round}"}}}]
    route: [{destination: {host: ${HUB_SERVICE}, subset: v1}}]
  - route: [{destination: {host: ${HUB_SERVICE}}}]
`;
}

/** The proxies: proxy j runs service (j mod N)'s workload, replica ⌊j / N⌋. */
export function proxyNodes(services: number, proxies: number): ProxyNode[] {
  const nodes: ProxyNode[] = [];
  for (let j = 0; j < proxies; j++) {
    const i = j % services;
    const name = `svc-${i}`;
    const ns = namespaceOf(i, services);
    nodes.push({
      id: `${name}-v1-${Math.floor(j / services)}.${ns}`,
      role: 'sidecar',
      workload: `${name}-v1`,
      namespace: ns,
      serviceAccount: name,
      labels: { app: name, version: 'v1' },
      address: '127.0.0.1',
      // Never dialled: the benchmark measures configuration, not traffic.
      inboundPort: 20_000 + (j % 40_000),
      ports: [{ name: 'http', port: 9080, protocol: 'HTTP' }],
      healthy: true,
    });
  }
  return nodes;
}

/** The marker a snapshot carries: the exact value of the hub route's header match, if any. */
export function markerOf(snapshot: {
  routeTables?: {
    virtualHosts?: {
      name: string;
      routes?: { matches?: { headers?: { name: string; match: { exact?: string } }[] }[] }[];
    }[];
  }[];
}): string | undefined {
  for (const table of snapshot.routeTables ?? []) {
    for (const vh of table.virtualHosts ?? []) {
      if (vh.name !== HUB_VHOST) continue;
      for (const r of vh.routes ?? [])
        for (const m of r.matches ?? [])
          for (const h of m.headers ?? []) if (h.name === MARKER_HEADER) return h.match.exact;
    }
  }
  return undefined;
}
