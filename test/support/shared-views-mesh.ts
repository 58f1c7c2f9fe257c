// A small mesh of four services in three namespaces and a gateway, whose sidecars share views: the
// fixture of the compile sharing tests and of the push encoding tests.
import type { Resource } from '../../src/api/resource.ts';
import type { CompileInput } from '../../src/compile/mesh-index.ts';
import type { ProxyNode } from '../../src/compile/snapshot.ts';

export const mesh = { trustDomain: 'cluster.local' };

export function svc(name: string, ns: string): Resource {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: { selector: { app: name }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  };
}

export function vs(name: string, ns: string, spec: unknown): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: ns, creationTimestamp: '2026-01-01T00:00:00Z' },
    spec,
  };
}

export function node(app: string, ns: string, replica: number, extra: Partial<ProxyNode> = {}): ProxyNode {
  return {
    id: `${app}-v1-${replica}.${ns}`,
    role: 'sidecar',
    workload: `${app}-v1`,
    namespace: ns,
    serviceAccount: app,
    labels: { app, version: 'v1' },
    address: '127.0.0.1',
    inboundPort: 20000 + replica,
    ports: [{ name: 'http', port: 9080 }],
    healthy: true,
    ...extra,
  };
}

export const gatewayNode: ProxyNode = {
  id: 'gw-0.edge',
  role: 'gateway',
  workload: 'gw',
  namespace: 'edge',
  serviceAccount: 'gw',
  labels: { istio: 'gw' },
  address: '127.0.0.1',
  ports: [],
  healthy: true,
};

export const services = [svc('a', 'one'), svc('b', 'one'), svc('c', 'two'), svc('d', 'three')];
export const proxies = [
  node('a', 'one', 0),
  node('a', 'one', 1),
  node('a', 'one', 2),
  node('b', 'one', 0),
  node('c', 'two', 0),
  node('d', 'three', 0),
  gatewayNode,
];
export const routing = [
  vs('a', 'one', { hosts: ['a'], http: [{ timeout: '2s', route: [{ destination: { host: 'a' } }] }] }),
  {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name: 'edge', namespace: 'edge' },
    spec: {
      selector: { istio: 'gw' },
      servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
    },
  },
  vs('edge', 'edge', {
    hosts: ['*'],
    gateways: ['edge'],
    http: [{ route: [{ destination: { host: 'a.one.svc.cluster.local' } }] }],
  }),
];

export function input(extra: Partial<CompileInput> = {}): CompileInput {
  return { revision: 3, resources: [...services, ...routing], proxies, mesh, ...extra };
}
