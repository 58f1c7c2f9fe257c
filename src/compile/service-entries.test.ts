import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Resource } from '../api/resource.ts';
import { compile } from './compile.ts';
import type { ProxyNode, ProxySnapshot, Route } from './snapshot.ts';

const client: ProxyNode = {
  id: 'client-0',
  role: 'sidecar',
  workload: 'client',
  namespace: 'default',
  serviceAccount: 'client',
  labels: { app: 'client' },
  address: '10.0.0.1',
  inboundPort: 15006,
  ports: [{ name: 'http', port: 8080 }],
  healthy: true,
};

const res = (kind: string, name: string, spec: unknown, created = '2024-01-01T00:00:00Z'): Resource => ({
  apiVersion: kind === 'Service' ? 'v1' : 'networking.istio.io/v1',
  kind,
  metadata: { name, namespace: 'default', creationTimestamp: created },
  spec,
});

const entry = (name: string, spec: Record<string, unknown>, created?: string) =>
  res('ServiceEntry', name, { location: 'MESH_EXTERNAL', ...spec }, created);

const api = entry('api', {
  hosts: ['api.example.com'],
  ports: [
    { number: 80, name: 'http', protocol: 'HTTP', targetPort: 443 },
    { number: 9000, name: 'tcp', protocol: 'TCP' },
  ],
  resolution: 'STATIC',
  endpoints: [
    { address: '192.0.2.10', labels: { version: 'v1' } },
    { address: '192.0.2.11', ports: { http: 8443 }, labels: { version: 'v2' } },
  ],
});
const dns = entry('dns', {
  hosts: ['dns.example.com'],
  ports: [{ number: 8080, name: 'http', protocol: 'HTTP' }],
  resolution: 'DNS',
});
const none = entry('none', {
  hosts: ['none.example.com'],
  ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
  resolution: 'NONE',
});

const snapshot = (...resources: Resource[]): ProxySnapshot =>
  compile({ revision: 1, resources, proxies: [client], mesh: { trustDomain: 'cluster.local' } }, client);

const vhost = (s: ProxySnapshot, name: string) =>
  s.routeTables.find((t) => t.name === 'outbound')!.virtualHosts.find((v) => v.name === name);
const cluster = (s: ProxySnapshot, name: string) => s.clusters.find((c) => c.name === name);
const forwardTo = (r: Route) => (r.action.type === 'forward' ? r.action.clusters.map((c) => c.cluster) : []);

test('HTTP ports of STATIC and DNS entries get a virtual host and a plaintext cluster of their endpoints', () => {
  const s = snapshot(api, dns, none);
  const vh = vhost(s, 'api.example.com:80');
  assert.deepEqual(vh?.domains, ['api.example.com', 'api.example.com:80']);
  assert.equal(vh?.routes[0].origin, 'ServiceEntry default/api (no VirtualService)');
  assert.deepEqual(forwardTo(vh!.routes[0]), ['outbound|80||api.example.com']);
  const c = cluster(s, 'outbound|80||api.example.com')!;
  assert.deepEqual(c.tls, { mode: 'DISABLE' });
  assert.equal(c.origin, 'ServiceEntry default/api');
  assert.deepEqual(
    c.endpoints.map((e) => `${e.address}:${e.port}`),
    ['192.0.2.10:443', '192.0.2.11:8443'],
  );
  // DNS without endpoints: the host itself, which the proxy resolves.
  const d = cluster(s, 'outbound|8080||dns.example.com')!;
  assert.deepEqual(d.endpoints, [{ address: 'dns.example.com', port: 8080, healthy: true }]);
  assert.deepEqual(d.dns, { mode: 'STRICT', refreshMs: 60_000 });
  // A TCP port has no virtual host (its cluster is the L4 path's).
  assert.equal(vhost(s, 'api.example.com:9000'), undefined);
  // NONE: original destination, no endpoints.
  const n = cluster(s, 'outbound|80||none.example.com')!;
  assert.deepEqual(forwardTo(vhost(s, 'none.example.com:80')!.routes[0]), [n.name]);
  assert.deepEqual([n.lb, n.endpoints, n.tls], [{ type: 'PASSTHROUGH' }, [], { mode: 'DISABLE' }]);
});

test("the host's DestinationRule: tls SIMPLE with the host as SNI, lb, pool and outlier as for mesh clusters", () => {
  const dr = res('DestinationRule', 'api', {
    host: 'api.example.com',
    trafficPolicy: {
      loadBalancer: { simple: 'ROUND_ROBIN' },
      connectionPool: { tcp: { connectTimeout: '2s' }, http: { maxRequestsPerConnection: 10 } },
      outlierDetection: { consecutive5xxErrors: 3 },
      tls: { mode: 'SIMPLE', caCertificates: '/etc/certs/ca.pem', subjectAltNames: ['api.example.com'] },
    },
    subsets: [
      {
        name: 'v2',
        labels: { version: 'v2' },
        trafficPolicy: {
          tls: {
            mode: 'MUTUAL',
            sni: 'v2.example.com',
            clientCertificate: '/etc/certs/client.pem',
            privateKey: '/etc/certs/client-key.pem',
            insecureSkipVerify: true,
          },
        },
      },
    ],
  });
  const vs = res('VirtualService', 'api', {
    hosts: ['api.example.com'],
    http: [{ route: [{ destination: { host: 'api.example.com', subset: 'v2' } }] }],
  });
  const s = snapshot(api, dr, vs);
  assert.deepEqual(forwardTo(vhost(s, 'api.example.com:80')!.routes[0]), ['outbound|80|v2|api.example.com']);
  const v2 = cluster(s, 'outbound|80|v2|api.example.com')!;
  assert.deepEqual(v2.tls, {
    mode: 'MUTUAL',
    sni: 'v2.example.com',
    insecureSkipVerify: true,
    clientCertificate: '/etc/certs/client.pem',
    privateKey: '/etc/certs/client-key.pem',
  });
  assert.deepEqual(
    v2.endpoints.map((e) => e.address),
    ['192.0.2.11'],
  );
  assert.equal(v2.origin, 'ServiceEntry default/api, DestinationRule default/api');
  assert.deepEqual(v2.lb, { type: 'ROUND_ROBIN' });
  assert.deepEqual(v2.connectionPool, { connectTimeoutMs: 2000, maxRequestsPerConnection: 10 });
  assert.equal(v2.outlierDetection?.consecutive5xxErrors, 3);

  const top = snapshot(api, { ...dr, spec: { ...(dr.spec as object), subsets: [] } });
  assert.deepEqual(cluster(top, 'outbound|80||api.example.com')?.tls, {
    mode: 'SIMPLE',
    sni: 'api.example.com',
    caCertificates: '/etc/certs/ca.pem',
    subjectAltNames: ['api.example.com'],
  });
});

test('ISTIO_MUTUAL toward an entry: mesh mTLS with its subjectAltNames and service accounts as identities', () => {
  const internal = entry('vm', {
    hosts: ['vm.internal'],
    location: 'MESH_INTERNAL',
    ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
    resolution: 'STATIC',
    endpoints: [{ address: '10.1.0.5', serviceAccount: 'vm' }],
    subjectAltNames: ['spiffe://cluster.local/ns/legacy/sa/vm'],
  });
  const mtls = {
    mode: 'ISTIO_MUTUAL',
    sni: 'outbound_.80_._.vm.internal',
    identities: ['spiffe://cluster.local/ns/default/sa/vm', 'spiffe://cluster.local/ns/legacy/sa/vm'],
  };
  // MESH_INTERNAL: mesh mTLS by default, as toward mesh services.
  assert.deepEqual(cluster(snapshot(internal), 'outbound|80||vm.internal')?.tls, mtls);
  const dr = (mode: string) =>
    res('DestinationRule', 'vm', { host: 'vm.internal', trafficPolicy: { tls: { mode } } });
  assert.deepEqual(cluster(snapshot(internal, dr('ISTIO_MUTUAL')), 'outbound|80||vm.internal')?.tls, mtls);
  assert.deepEqual(cluster(snapshot(internal, dr('DISABLE')), 'outbound|80||vm.internal')?.tls, {
    mode: 'DISABLE',
  });
  // MESH_EXTERNAL: plaintext unless the DestinationRule says otherwise.
  const external = entry('vm', { ...(internal.spec as object), location: 'MESH_EXTERNAL' });
  assert.deepEqual(cluster(snapshot(external), 'outbound|80||vm.internal')?.tls, { mode: 'DISABLE' });
  assert.deepEqual(cluster(snapshot(external, dr('ISTIO_MUTUAL')), 'outbound|80||vm.internal')?.tls, mtls);
});

test('a registry Service of the same name wins; of two entries for a host:port the oldest', () => {
  const svc = res('Service', 'web', { selector: { app: 'web' }, ports: [{ name: 'http', port: 80 }] });
  const shadow = entry('shadow', {
    hosts: ['web.default.svc.cluster.local'],
    ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
    resolution: 'STATIC',
    endpoints: [{ address: '192.0.2.1' }],
  });
  const older = entry(
    'older',
    { ...(api.spec as object), endpoints: [{ address: '192.0.2.50' }] },
    '2023-01-01T00:00:00Z',
  );
  const s = snapshot(svc, shadow, api, older);
  const web = s.routeTables[0].virtualHosts.filter((v) => v.name.startsWith('web.default.svc.cluster.local'));
  assert.equal(web.length, 1);
  assert.equal(web[0].routes[0].origin, 'Service default/web (no VirtualService)');
  assert.deepEqual(
    cluster(s, 'outbound|80||api.example.com')?.endpoints.map((e) => e.address),
    ['192.0.2.50'],
  );
});

test("a VirtualService destination on an entry host without a port takes the entry's only routed port", () => {
  const vs = res('VirtualService', 'dns', {
    hosts: ['dns.example.com'],
    http: [{ timeout: '3s', route: [{ destination: { host: 'dns.example.com' } }] }],
  });
  const vh = vhost(snapshot(dns, vs), 'dns.example.com:8080')!;
  assert.equal(vh.routes[0].origin, 'VirtualService default/dns http[0]');
  assert.deepEqual(forwardTo(vh.routes[0]), ['outbound|8080||dns.example.com']);
});

test('exportTo: an entry is visible to the namespaces it names ("." its own, "~" none)', () => {
  const other: ProxyNode = { ...client, id: 'other-0', namespace: 'other' };
  const compileFor = (node: ProxyNode, exportTo: string[]) =>
    compile(
      {
        revision: 1,
        resources: [entry('api', { ...(api.spec as object), exportTo })],
        proxies: [client, other],
        mesh: { trustDomain: 'cluster.local' },
      },
      node,
    );
  const sees = (node: ProxyNode, exportTo: string[]) =>
    vhost(compileFor(node, exportTo), 'api.example.com:80') !== undefined;
  assert.deepEqual(
    [
      sees(client, ['.']),
      sees(other, ['.']),
      sees(other, ['other']),
      sees(other, ['*']),
      sees(client, ['~']),
    ],
    [true, false, true, true, false],
  );
});

test('wildcard NONE entry: original destination for every host under it; single addresses are domains', () => {
  const wild = entry('wild', {
    hosts: ['*.wild.example'],
    addresses: ['192.0.2.80', '2001:db8::1', '10.0.0.0/8'],
    ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
    resolution: 'NONE',
  });
  const s = snapshot(wild);
  const vh = vhost(s, '*.wild.example:80')!;
  assert.deepEqual(vh.domains, [
    '*.wild.example',
    '*.wild.example:80',
    '192.0.2.80',
    '192.0.2.80:80',
    '[2001:db8::1]:80',
  ]);
  const c = cluster(s, forwardTo(vh.routes[0])[0])!;
  assert.deepEqual([c.name, c.lb, c.endpoints], ['outbound|80||*.wild.example', { type: 'PASSTHROUGH' }, []]);
});

test('workloadSelector: the selected sidecars are the endpoints, over mesh mTLS, and serve the host inbound', () => {
  const vm: ProxyNode = {
    ...client,
    id: 'legacy-0',
    workload: 'legacy',
    serviceAccount: 'legacy',
    labels: { app: 'legacy' },
    address: '10.0.0.9',
    inboundPort: 15006,
    ports: [{ name: 'http', port: 9090 }],
  };
  const selecting = entry('legacy', {
    hosts: ['legacy.internal'],
    location: 'MESH_INTERNAL',
    ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: 9090 }],
    resolution: 'STATIC',
    workloadSelector: { labels: { app: 'legacy' } },
  });
  const input = {
    revision: 1,
    resources: [selecting],
    proxies: [client, vm],
    mesh: { trustDomain: 'cluster.local' },
  };
  const c = cluster(compile(input, client), 'outbound|80||legacy.internal')!;
  assert.deepEqual(
    c.endpoints.map((e) => `${e.address}:${e.port} ${e.identity}`),
    ['10.0.0.9:15006 spiffe://cluster.local/ns/default/sa/legacy'],
  );
  assert.equal(c.tls.mode, 'ISTIO_MUTUAL');
  const inbound = compile(input, vm).listeners.find((l) => l.type === 'inbound');
  assert.ok(inbound?.type === 'inbound');
  assert.deepEqual(inbound.services, [{ host: 'legacy.internal', port: 80, targetPort: 9090 }]);
});

test('TCP and TLS ports: no virtual host, but their cluster is compiled for the L4 path', async () => {
  const { buildMeshIndex } = await import('./mesh-index.ts');
  const { ClusterSet } = await import('./clusters.ts');
  const index = buildMeshIndex({
    revision: 1,
    resources: [api],
    proxies: [client],
    mesh: { trustDomain: 'cluster.local' },
  });
  const set = new ClusterSet(index, client.namespace);
  const c = set.clusters.get(set.outbound('api.example.com', 9000, undefined))!;
  assert.deepEqual(
    c.endpoints.map((e) => `${e.address}:${e.port}`),
    ['192.0.2.10:9000', '192.0.2.11:9000'],
  );
});

test('outboundTrafficPolicy: REGISTRY_ONLY ends the table with block_all, ALLOW_ANY with allow_any', () => {
  const s = snapshot(api);
  const last = s.routeTables[0].virtualHosts.at(-1)!;
  assert.deepEqual([last.name, last.domains], ['block_all', ['*']]);
  assert.deepEqual(last.routes[0].action, {
    type: 'direct',
    status: 502,
    flags: 'NR',
    cluster: 'BlackHoleCluster',
  });
  const configMap: Resource = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'istio', namespace: 'istio-system' },
    spec: { data: { mesh: 'outboundTrafficPolicy:\n  mode: ALLOW_ANY\n' } },
  };
  const open = snapshot(api, configMap);
  const any = open.routeTables[0].virtualHosts.at(-1)!;
  assert.equal(any.name, 'allow_any');
  assert.deepEqual(forwardTo(any.routes[0]), ['PassthroughCluster']);
  assert.deepEqual(cluster(open, 'PassthroughCluster')?.lb, { type: 'PASSTHROUGH' });
});

test("endpoint weight reaches the cluster's endpoints as the balancer's weight (1, 0 or unset: left out)", () => {
  const weighted = entry('weighted', {
    hosts: ['weighted.example.com'],
    ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
    resolution: 'STATIC',
    endpoints: [
      { address: '192.0.2.1', weight: 3 },
      { address: '192.0.2.2', weight: 1 },
      { address: '192.0.2.3', weight: 0 },
      { address: '192.0.2.4' },
    ],
  });
  const c = cluster(snapshot(weighted), 'outbound|80||weighted.example.com')!;
  assert.deepEqual(
    c.endpoints.map((e) => [e.address, e.weight]),
    [
      ['192.0.2.1', 3],
      ['192.0.2.2', undefined],
      ['192.0.2.3', undefined],
      ['192.0.2.4', undefined],
    ],
  );
});
