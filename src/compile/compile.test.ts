import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Resource } from '../api/resource.ts';
import { compile } from './compile.ts';
import type { CompileInput } from './mesh-index.ts';
import { DEFAULT_RETRY } from './route-policy.ts';
import type {
  Cluster,
  GatewayListener,
  InboundListener,
  ProxyNode,
  ProxySnapshot,
  Route,
} from './snapshot.ts';

const mesh = { trustDomain: 'cluster.local' };

function svc(name: string, ns = 'default', port = 9080, targetPort: number | string = 9080): Resource {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: { selector: { app: name }, ports: [{ name: 'http', port, targetPort }] },
  };
}

function node(workload: string, labels: Record<string, string>, extra: Partial<ProxyNode> = {}): ProxyNode {
  return {
    id: `${workload}-0.default`,
    role: 'sidecar',
    workload,
    namespace: 'default',
    serviceAccount: `bookinfo-${labels.app ?? workload}`,
    labels,
    address: '127.0.0.1',
    inboundPort: 20000 + workload.length,
    ports: [{ name: 'http', port: 9080 }],
    healthy: true,
    ...extra,
  };
}

function res(
  kind: string,
  name: string,
  spec: unknown,
  created = '2026-01-01T00:00:00Z',
  ns = 'default',
): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind,
    metadata: { name, namespace: ns, creationTimestamp: created },
    spec,
  };
}

const reviewsDr = res('DestinationRule', 'reviews', {
  host: 'reviews',
  subsets: ['v1', 'v2', 'v3'].map((v) => ({ name: v, labels: { version: v } })),
});

const proxies = [
  node('productpage-v1', { app: 'productpage', version: 'v1' }),
  node('reviews-v1', { app: 'reviews', version: 'v1' }),
  node('reviews-v2', { app: 'reviews', version: 'v2' }),
  node('reviews-v3', { app: 'reviews', version: 'v3' }),
  node('ratings-v1', { app: 'ratings', version: 'v1' }),
  node(
    'istio-ingressgateway',
    { istio: 'ingressgateway' },
    {
      role: 'gateway',
      namespace: 'istio-system',
      ports: [],
      inboundPort: undefined,
      id: 'gw-0.istio-system',
      serviceAccount: 'gw',
    },
  ),
];

function input(resources: Resource[], extra: Partial<CompileInput> = {}): CompileInput {
  return {
    revision: 7,
    resources: [svc('productpage'), svc('reviews'), svc('ratings'), ...resources],
    proxies,
    mesh,
    ...extra,
  };
}

const sidecar = proxies[0];
const gateway = proxies[5];

function cluster(s: ProxySnapshot, name: string): Cluster {
  const c = s.clusters.find((x) => x.name === name);
  assert.ok(c, `cluster ${name} in ${s.clusters.map((x) => x.name)}`);
  return c;
}

function routesFor(s: ProxySnapshot, host: string): Route[] {
  const vh = s.routeTables.flatMap((t) => t.virtualHosts).find((v) => v.domains.includes(host));
  assert.ok(vh, `virtual host for ${host}`);
  return vh.routes;
}

describe('compile: sidecar outbound', () => {
  test('without VirtualServices every service port gets a default route to its whole cluster', () => {
    const s = compile(input([]), sidecar);
    const routes = routesFor(s, 'reviews:9080');
    assert.equal(routes.length, 1);
    assert.deepEqual(routes[0].action, {
      type: 'forward',
      clusters: [{ cluster: 'outbound|9080||reviews.default.svc.cluster.local', weight: 100 }],
      retry: DEFAULT_RETRY,
    });
    const c = cluster(s, 'outbound|9080||reviews.default.svc.cluster.local');
    assert.deepEqual(c.endpoints.map((e) => e.workload).sort(), ['reviews-v1', 'reviews-v2', 'reviews-v3']);
    assert.deepEqual(c.tls, {
      mode: 'ISTIO_MUTUAL',
      sni: 'outbound_.9080_._.reviews.default.svc.cluster.local',
      identities: ['spiffe://cluster.local/ns/default/sa/bookinfo-reviews'],
    });
    assert.equal(c.endpoints[0].identity, 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews');
  });

  test('Kubernetes short names resolve only within the client namespace', () => {
    const s = compile(input([svc('billing', 'finance')]), sidecar);
    const domains = s.routeTables[0].virtualHosts.find(
      (v) => v.name === 'billing.finance.svc.cluster.local:9080',
    )!.domains;
    assert.ok(domains.includes('billing.finance:9080'));
    assert.ok(domains.includes('billing.finance.svc.cluster.local'));
    assert.ok(!domains.includes('billing'), 'a short name from another namespace must not resolve');
    assert.ok(routesFor(s, 'reviews').length > 0, 'same-namespace short name resolves');
  });

  test('subsets select endpoints by the DestinationRule labels; an undefined subset selects none', () => {
    const vs = res('VirtualService', 'reviews', {
      hosts: ['reviews'],
      http: [
        {
          route: [
            { destination: { host: 'reviews', subset: 'v2' }, weight: 50 },
            { destination: { host: 'reviews', subset: 'v9' }, weight: 50 },
          ],
        },
      ],
    });
    const s = compile(input([reviewsDr, vs]), sidecar);
    assert.deepEqual(
      cluster(s, 'outbound|9080|v2|reviews.default.svc.cluster.local').endpoints.map((e) => e.workload),
      ['reviews-v2'],
    );
    assert.deepEqual(cluster(s, 'outbound|9080|v9|reviews.default.svc.cluster.local').endpoints, []);
    // Secure naming covers every identity of the service, not just the subset.
    assert.equal(
      cluster(s, 'outbound|9080|v2|reviews.default.svc.cluster.local').origin,
      'DestinationRule default/reviews',
    );
  });

  test('weights: one destination takes all, zero weights are dropped, first match wins', () => {
    const vs = res('VirtualService', 'reviews', {
      hosts: ['reviews'],
      http: [
        {
          match: [{ headers: { 'end-user': { exact: 'jason' } } }],
          route: [{ destination: { host: 'reviews', subset: 'v2' } }],
        },
        {
          match: [{ uri: { prefix: '/reviews' } }, { uri: { regex: '/r[0-9]+' } }],
          timeout: '1.5s',
          route: [
            { destination: { host: 'reviews', subset: 'v1' }, weight: 80 },
            { destination: { host: 'reviews', subset: 'v3' }, weight: 20 },
            { destination: { host: 'reviews', subset: 'v2' }, weight: 0 },
          ],
        },
      ],
    });
    const routes = routesFor(compile(input([reviewsDr, vs]), sidecar), 'reviews');
    assert.equal(routes.length, 2);
    assert.deepEqual(routes[0].matches, [{ headers: [{ name: 'end-user', match: { exact: 'jason' } }] }]);
    assert.deepEqual(routes[0].action, {
      type: 'forward',
      clusters: [{ cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local', weight: 100 }],
      retry: DEFAULT_RETRY,
    });
    assert.deepEqual(routes[1].matches, [{ uri: { prefix: '/reviews' } }, { uri: { regex: '/r[0-9]+' } }]);
    assert.deepEqual(routes[1].action, {
      type: 'forward',
      clusters: [
        { cluster: 'outbound|9080|v1|reviews.default.svc.cluster.local', weight: 80 },
        { cluster: 'outbound|9080|v3|reviews.default.svc.cluster.local', weight: 20 },
      ],
      timeoutMs: 1500,
      retry: DEFAULT_RETRY,
    });
    assert.equal(routes[1].origin, 'VirtualService default/reviews http[1]');
  });

  test('for sidecars the oldest VirtualService for a host wins; gateway-only ones do not apply', () => {
    const older = res(
      'VirtualService',
      'a-older',
      { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] },
      '2026-01-01T00:00:00Z',
    );
    const newer = res(
      'VirtualService',
      'b-newer',
      { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v3' } }] }] },
      '2026-02-01T00:00:00Z',
    );
    const gwOnly = res('VirtualService', 'gw-only', {
      hosts: ['ratings'],
      gateways: ['bookinfo-gateway'],
      http: [{ route: [{ destination: { host: 'ratings', subset: 'v1' } }] }],
    });
    const s = compile(input([reviewsDr, newer, older, gwOnly]), sidecar);
    assert.equal(routesFor(s, 'reviews')[0].origin, 'VirtualService default/a-older http[0]');
    assert.equal(routesFor(s, 'ratings')[0].name, 'default');
  });

  test('source-scoped matches are settled per proxy; a rule with no match left never becomes a catch-all', () => {
    const vs = res('VirtualService', 'reviews', {
      hosts: ['reviews'],
      http: [
        {
          match: [{ sourceLabels: { app: 'ratings' } }],
          route: [{ destination: { host: 'reviews', subset: 'v3' } }],
        },
        {
          match: [{ sourceNamespace: 'other' }, { port: 1234 }],
          route: [{ destination: { host: 'reviews', subset: 'v2' } }],
        },
        {
          match: [{ sourceLabels: { app: 'productpage' }, headers: { 'x-canary': {} } }],
          route: [{ destination: { host: 'reviews', subset: 'v2' } }],
        },
        { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
      ],
    });
    const routes = routesFor(compile(input([reviewsDr, vs]), sidecar), 'reviews');
    // productpage is not ratings, not in "other", and calls port 9080: rules 0 and 1 do not exist for it.
    assert.deepEqual(
      routes.map((r) => r.origin),
      ['VirtualService default/reviews http[2]', 'VirtualService default/reviews http[3]'],
    );
    assert.deepEqual(routes[0].matches, [{ headers: [{ name: 'x-canary', match: {} }] }]);
    const forRatings = routesFor(compile(input([reviewsDr, vs]), proxies[4]), 'reviews');
    assert.equal(forRatings[0].origin, 'VirtualService default/reviews http[0]');
    assert.deepEqual(forRatings[0].matches, [{}]);
  });

  test('match-level gateways pick the rules for the mesh and for each gateway', () => {
    const gw = res('Gateway', 'gw', {
      selector: { istio: 'ingressgateway' },
      servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
    });
    const vs = res('VirtualService', 'reviews', {
      hosts: ['reviews'],
      gateways: ['mesh', 'gw'],
      http: [
        {
          match: [{ gateways: ['gw'], uri: { prefix: '/edge' } }],
          route: [{ destination: { host: 'reviews', subset: 'v3' } }],
        },
        { match: [{ gateways: ['mesh'] }], route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
      ],
    });
    const mesh = routesFor(compile(input([reviewsDr, gw, vs]), sidecar), 'reviews');
    assert.deepEqual(
      mesh.map((r) => r.origin),
      ['VirtualService default/reviews http[1]'],
    );
    const edge = compile(input([reviewsDr, gw, vs]), gateway).routeTables[0].virtualHosts[0].routes;
    assert.deepEqual(
      edge.map((r) => r.origin),
      ['VirtualService default/reviews http[0]'],
    );
    assert.deepEqual(edge[0].matches, [{ uri: { prefix: '/edge' } }]);
  });

  test('redirects compile with Istio defaults', () => {
    const vs = res('VirtualService', 'ratings', {
      hosts: ['ratings'],
      http: [
        { redirect: { uri: '/v2', derivePort: 'FROM_PROTOCOL_DEFAULT', scheme: 'https' } },
        { redirect: { authority: 'new' } },
      ],
    });
    const routes = routesFor(compile(input([vs]), sidecar), 'ratings');
    assert.deepEqual(routes[0].action, {
      type: 'redirect',
      status: 301,
      uri: '/v2',
      scheme: 'https',
      port: 'protocol-default',
    });
    assert.deepEqual(routes[1].action, { type: 'redirect', status: 301, authority: 'new' });
  });

  test('a direct response compiles to a direct action', () => {
    const vs = res('VirtualService', 'ratings', {
      hosts: ['ratings'],
      http: [{ directResponse: { status: 503, body: { string: 'down' } } }],
    });
    assert.deepEqual(routesFor(compile(input([vs]), sidecar), 'ratings')[0].action, {
      type: 'direct',
      status: 503,
      body: 'down',
    });
  });
});

describe('compile: inbound', () => {
  test('a sidecar serves the service ports that select it, mapped to its workload ports', () => {
    const s = compile(input([svc('reviews-alt', 'default', 80, 'http')]), proxies[2]);
    const inbound = s.listeners.find((l): l is InboundListener => l.type === 'inbound')!;
    assert.equal(inbound.mtls, 'STRICT');
    assert.deepEqual(inbound.services, [
      { host: 'reviews.default.svc.cluster.local', port: 9080, targetPort: 9080 },
    ]);
    assert.deepEqual(inbound.ports, [9080]);
    assert.ok(s.clusters.some((c) => c.name === 'inbound|9080||' && c.tls.mode === 'DISABLE'));
    assert.equal(s.proxy.identity, 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews');
  });

  test('named target ports resolve against the workload port names', () => {
    const alt = {
      ...svc('reviews-alt', 'default', 80, 'http'),
      spec: { selector: { app: 'reviews' }, ports: [{ name: 'web', port: 80, targetPort: 'http' }] },
    };
    const s = compile(input([alt]), proxies[2]);
    const inbound = s.listeners.find((l): l is InboundListener => l.type === 'inbound')!;
    assert.deepEqual(
      inbound.services.find((x) => x.port === 80),
      { host: 'reviews-alt.default.svc.cluster.local', port: 80, targetPort: 9080 },
    );
  });
});

describe('compile: gateway', () => {
  const gw = res('Gateway', 'bookinfo-gateway', {
    selector: { istio: 'ingressgateway' },
    servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
  });
  const bookinfo = res('VirtualService', 'bookinfo', {
    hosts: ['*'],
    gateways: ['bookinfo-gateway'],
    http: [
      {
        match: [{ uri: { exact: '/productpage' } }],
        route: [{ destination: { host: 'productpage', port: { number: 9080 } } }],
      },
    ],
  });

  test('Gateway servers become listeners; bound VirtualServices become their routes', () => {
    const s = compile(input([gw, bookinfo]), gateway);
    const l = s.listeners as GatewayListener[];
    assert.deepEqual(l, [
      {
        name: '0.0.0.0_80',
        type: 'gateway',
        port: 80,
        protocol: 'HTTP',
        routeTable: 'http.80',
        gateways: ['default/bookinfo-gateway'],
      },
    ]);
    const vh = s.routeTables[0].virtualHosts[0];
    assert.deepEqual(vh.domains, ['*']);
    assert.equal(vh.routes[0].origin, 'VirtualService default/bookinfo http[0]');
    // A gateway only gets the clusters its routes use.
    assert.deepEqual(
      s.clusters.map((c) => c.name),
      ['outbound|9080||productpage.default.svc.cluster.local'],
    );
  });

  test('a Gateway whose selector does not match gives the proxy no listener', () => {
    const other = res('Gateway', 'other', {
      selector: { istio: 'egressgateway' },
      servers: [{ port: { number: 81, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }],
    });
    assert.deepEqual(compile(input([other]), gateway).listeners, []);
  });

  test('server hosts restrict which VirtualService hosts a gateway serves', () => {
    const narrow = res('Gateway', 'bookinfo-gateway', {
      selector: { istio: 'ingressgateway' },
      servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['bookinfo.example.com'] }],
    });
    const vs = res('VirtualService', 'bookinfo', {
      hosts: ['bookinfo.example.com', 'evil.example.com'],
      gateways: ['bookinfo-gateway'],
      http: [{ route: [{ destination: { host: 'productpage' } }] }],
    });
    const s = compile(input([narrow, vs]), gateway);
    assert.deepEqual(
      s.routeTables[0].virtualHosts.map((v) => v.domains[0]),
      ['bookinfo.example.com'],
    );
  });
});

describe('compile: versions', () => {
  test('are deterministic and independent of input order', () => {
    const vs = res('VirtualService', 'reviews', {
      hosts: ['reviews'],
      http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }],
    });
    const a = compile(input([reviewsDr, vs]), sidecar);
    const b = compile({ ...input([vs, reviewsDr]), proxies: [...proxies].reverse() }, sidecar);
    assert.equal(a.version, b.version);
    assert.deepEqual(a, b);
  });

  test('change when an endpoint becomes unhealthy, not when only the revision moves', () => {
    const a = compile(input([]), sidecar);
    const b = compile(input([], { revision: 8 }), sidecar);
    assert.equal(a.version, b.version);
    assert.equal(b.revision, 8);
    const sick = proxies.map((p) => (p.workload === 'ratings-v1' ? { ...p, healthy: false } : p));
    const c = compile(input([], { proxies: sick }), sidecar);
    assert.notEqual(c.version, a.version);
    assert.equal(cluster(c, 'outbound|9080||ratings.default.svc.cluster.local').endpoints[0].healthy, false);
  });
});
