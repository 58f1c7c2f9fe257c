import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SidecarSpec } from '../api/kinds/sidecar.ts';
import type { Resource } from '../api/resource.ts';
import { compile } from './compile.ts';
import type { CompileInput } from './mesh-index.ts';
import { inScope, selectSidecar, sidecarConflicts, sidecarScope } from './sidecar-scope.ts';
import type { InboundListener, OutboundListener, ProxyNode } from './snapshot.ts';

function sidecar(
  name: string,
  ns: string,
  spec: SidecarSpec,
  created = '2026-01-01T00:00:00Z',
): Resource<SidecarSpec> {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'Sidecar',
    metadata: { name, namespace: ns, creationTimestamp: created },
    spec,
  };
}

function node(app: string, ns: string, extra: Partial<ProxyNode> = {}): ProxyNode {
  return {
    id: `${app}-0.${ns}`,
    role: 'sidecar',
    workload: app,
    namespace: ns,
    serviceAccount: app,
    labels: { app },
    address: '127.0.0.1',
    inboundPort: 20000,
    ports: [{ name: 'http', port: 9080 }],
    healthy: true,
    ...extra,
  };
}

const egress = (...hosts: string[]): SidecarSpec => ({ egress: [{ hosts }] });

describe('selectSidecar: workload, then namespace, then the root namespace; the oldest within a level', () => {
  const wl = sidecar('wl', 'default', { workloadSelector: { labels: { app: 'reviews' } }, ...egress('./*') });
  const wlNewer = sidecar(
    'wl-newer',
    'default',
    { workloadSelector: { labels: { app: 'reviews' } }, ...egress('./*') },
    '2026-02-01T00:00:00Z',
  );
  const ns = sidecar('default', 'default', egress('./*'));
  const other = sidecar('default', 'other', egress('./*'));
  const root = sidecar('default', 'istio-system', egress('./*'));
  const rootSelecting = sidecar('rs', 'istio-system', {
    workloadSelector: { labels: { app: 'reviews' } },
    ...egress('./*'),
  });
  const reviews = node('reviews', 'default');
  const ratings = node('ratings', 'default');
  const cases: [string, Resource<SidecarSpec>[], ProxyNode, Resource<SidecarSpec> | undefined][] = [
    ['none', [], reviews, undefined],
    ['the workload one over the namespace one', [ns, wl, root], reviews, wl],
    ['the namespace one for a workload no selector picks', [ns, wl, root], ratings, ns],
    ['the oldest of two selecting one workload', [wl, wlNewer], reviews, wl],
    ['the mesh default when the namespace has none', [other, root], reviews, root],
    ['another namespace never applies', [other], reviews, undefined],
    [
      'a root Sidecar with a selector selects only in the root namespace',
      [rootSelecting],
      reviews,
      undefined,
    ],
    ['gateways take none', [ns, root], node('gw', 'default', { role: 'gateway' }), undefined],
  ];
  for (const [name, sidecars, n, want] of cases)
    test(name, () => assert.equal(selectSidecar(sidecars, n, 'istio-system'), want));
  test('a custom root namespace', () => {
    const meshRoot = sidecar('default', 'mesh-root', egress('./*'));
    assert.equal(selectSidecar([root, meshRoot], reviews, 'mesh-root'), meshRoot);
  });
});

describe('inScope: egress hosts by namespace and DNS name, per port', () => {
  const cases: [string, SidecarSpec, string, string, number | undefined, boolean][] = [
    ['./* imports its namespace', egress('./*'), 'default', 'a.default.svc.cluster.local', 9080, true],
    ['./* not another namespace', egress('./*'), 'prod', 'a.prod.svc.cluster.local', 9080, false],
    [
      '*/name imports the name from anywhere',
      egress('*/a.prod.svc.cluster.local'),
      'prod',
      'a.prod.svc.cluster.local',
      80,
      true,
    ],
    [
      '*/name not another name',
      egress('*/a.prod.svc.cluster.local'),
      'prod',
      'b.prod.svc.cluster.local',
      80,
      false,
    ],
    ['ns/*.suffix', egress('prod/*.example.com'), 'prod', 'api.example.com', 80, true],
    [
      'ns/*.suffix does not cover the bare suffix',
      egress('prod/*.example.com'),
      'prod',
      'example.com',
      80,
      false,
    ],
    [
      'a wildcard host is imported by a name it covers',
      egress('*/api.example.com'),
      'x',
      '*.example.com',
      80,
      true,
    ],
    ['~/* imports nothing', egress('~/*'), 'default', 'a.default.svc.cluster.local', 9080, false],
    ['*/* imports everything', egress('*/*'), 'x', 'anything.example.com', 1, true],
    [
      'no egress at all means */*',
      { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } },
      'x',
      'a.x.svc.cluster.local',
      80,
      true,
    ],
    [
      'a port listener takes its port',
      { egress: [{ port: { number: 9080 }, hosts: ['./*'] }, { hosts: ['istio-system/*'] }] },
      'default',
      'a.default.svc.cluster.local',
      9080,
      true,
    ],
    [
      'other ports go through the portless listener',
      { egress: [{ port: { number: 9080 }, hosts: ['./*'] }, { hosts: ['istio-system/*'] }] },
      'default',
      'a.default.svc.cluster.local',
      8080,
      false,
    ],
    [
      'without a portless listener, other ports see nothing',
      { egress: [{ port: { number: 9080 }, hosts: ['*/*'] }] },
      'default',
      'a.default.svc.cluster.local',
      8080,
      false,
    ],
    [
      'no port asked: any listener',
      { egress: [{ port: { number: 9080 }, hosts: ['./*'] }] },
      'default',
      'a.default.svc.cluster.local',
      undefined,
      true,
    ],
  ];
  for (const [name, spec, ns, host, port, want] of cases)
    test(name, () => {
      const scope = sidecarScope(sidecar('s', 'default', spec), 'default');
      assert.equal(inScope(scope, ns, [host], port), want);
    });
  test("the mesh default's `.` is the proxy's namespace", () => {
    const scope = sidecarScope(sidecar('default', 'istio-system', egress('./*')), 'prod');
    assert.equal(inScope(scope, 'prod', ['a.prod.svc.cluster.local'], 80), true);
    assert.equal(inScope(scope, 'istio-system', ['x.istio-system.svc.cluster.local'], 80), false);
  });
  test('no scope: everything', () => assert.equal(inScope(undefined, 'x', ['y'], 1), true));
});

describe('sidecarScope: ingress endpoints and outbound policy', () => {
  test('defaultEndpoint ports by workload port; unix sockets are left alone', () => {
    const scope = sidecarScope(
      sidecar('s', 'default', {
        ingress: [
          { port: { number: 9080 }, defaultEndpoint: '127.0.0.1:8080' },
          { port: { number: 9081 }, defaultEndpoint: '0.0.0.0:8081' },
          { port: { number: 9082 }, defaultEndpoint: 'unix:///var/run/app.sock' },
          { port: { number: 9083 } },
        ],
        outboundTrafficPolicy: { mode: 'ALLOW_ANY' },
      }),
      'default',
    );
    assert.deepEqual(
      [...scope.ingress],
      [
        [9080, 8080],
        [9081, 8081],
      ],
    );
    assert.equal(scope.outboundTrafficPolicy, 'ALLOW_ANY');
  });
});

describe('sidecarConflicts: IST0110 and IST0111 as warnings', () => {
  test('two selector-less Sidecars in a namespace; two selecting one workload', () => {
    const a = sidecar('a', 'default', egress('./*'));
    const b = sidecar('b', 'default', egress('./*'), '2026-02-01T00:00:00Z');
    const c = sidecar('c', 'default', { workloadSelector: { labels: { app: 'reviews' } }, ...egress('./*') });
    const d = sidecar(
      'd',
      'default',
      { workloadSelector: { labels: { app: 'reviews' } }, ...egress('./*') },
      '2026-02-01T00:00:00Z',
    );
    const out = sidecarConflicts([a, c, b, d], [node('reviews', 'default'), node('ratings', 'default')]);
    assert.deepEqual(
      out.map((w) => [w.resource, /IST011\d/.exec(w.message)?.[0]]),
      [
        ['Sidecar default/b', 'IST0111'],
        ['Sidecar default/d', 'IST0110'],
      ],
    );
    assert.match(out[0].message, /Sidecar default\/a is older and applies/);
  });
});

// ---- what the proxy receives --------------------------------------------------------------------

const mesh = { trustDomain: 'cluster.local' };

function svc(name: string, ns: string, ports = [9080]): Resource {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: ns },
    spec: {
      selector: { app: name },
      ports: ports.map((port) => ({ name: `http-${port}`, port, targetPort: 9080 })),
    },
  };
}

function vs(name: string, ns: string, spec: unknown, created = '2026-01-01T00:00:00Z'): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name, namespace: ns, creationTimestamp: created },
    spec,
  };
}

const services = [
  svc('productpage', 'default'),
  svc('reviews', 'default'),
  svc('ratings', 'default', [9080, 8080]),
  svc('db', 'prod'),
];
const proxies = [
  node('productpage', 'default'),
  node('reviews', 'default'),
  node('ratings', 'default'),
  node('db', 'prod'),
];
const input = (...extra: Resource[]): CompileInput => ({
  revision: 1,
  resources: [...services, ...extra],
  proxies,
  mesh,
});
const productpage = proxies[0];

/** The catch-all outboundTrafficPolicy host ends every table; these tests are about the others. */
const CATCH_ALL = new Set(['block_all', 'allow_any']);
const hostsOf = (i: CompileInput, n = productpage) =>
  compile(i, n)
    .routeTables[0].virtualHosts.map((v) => v.name)
    .filter((name) => !CATCH_ALL.has(name));
const clustersOf = (i: CompileInput, n = productpage) =>
  compile(i, n)
    .clusters.filter((c) => c.direction === 'outbound')
    .map((c) => c.name);

describe('compile: a Sidecar shrinks what a proxy receives', () => {
  test('without a Sidecar a proxy sees every service port', () => {
    assert.deepEqual(hostsOf(input()), [
      'db.prod.svc.cluster.local:9080',
      'productpage.default.svc.cluster.local:9080',
      'ratings.default.svc.cluster.local:9080',
      'ratings.default.svc.cluster.local:8080',
      'reviews.default.svc.cluster.local:9080',
    ]);
  });

  test('egress hosts: its route table and clusters hold only what it imports', () => {
    const s = sidecar('default', 'default', egress('./reviews.default.svc.cluster.local', 'prod/*'));
    assert.deepEqual(hostsOf(input(s)), [
      'db.prod.svc.cluster.local:9080',
      'reviews.default.svc.cluster.local:9080',
    ]);
    assert.deepEqual(clustersOf(input(s)), [
      'outbound|9080||db.prod.svc.cluster.local',
      'outbound|9080||reviews.default.svc.cluster.local',
    ]);
  });

  test('egress ports: each port through its listener', () => {
    const s = sidecar('default', 'default', {
      egress: [{ port: { number: 8080 }, hosts: ['./*'] }, { hosts: ['prod/*'] }],
    });
    assert.deepEqual(hostsOf(input(s)), [
      'db.prod.svc.cluster.local:9080',
      'ratings.default.svc.cluster.local:8080',
    ]);
  });

  test('~/* trims everything; the inbound side stays', () => {
    const s = sidecar('default', 'default', egress('~/*'));
    const snap = compile(input(s), productpage);
    assert.deepEqual(
      snap.routeTables[0].virtualHosts.map((v) => v.name),
      ['block_all'],
    );
    assert.deepEqual(
      snap.clusters.map((c) => c.name),
      ['inbound|9080||'],
    );
    assert.equal((snap.listeners[1] as InboundListener).services.length, 1);
  });

  test('a workload Sidecar applies to its workload only', () => {
    const s = sidecar('pp', 'default', {
      workloadSelector: { labels: { app: 'productpage' } },
      ...egress('~/*'),
    });
    assert.deepEqual(hostsOf(input(s)), []);
    assert.equal(hostsOf(input(s), proxies[1]).length, 5);
  });

  test("a VirtualService the Sidecar does not import does not win the host; its destinations' clusters come with one it does", () => {
    const toV2 = vs('reviews', 'prod', {
      hosts: ['reviews.default.svc.cluster.local'],
      http: [{ route: [{ destination: { host: 'ratings.default.svc.cluster.local' } }] }],
    });
    const s = sidecar('default', 'default', egress('./reviews.default.svc.cluster.local'));
    const seen = compile(input(toV2), productpage).routeTables[0].virtualHosts.find((v) =>
      v.name.startsWith('reviews'),
    );
    assert.equal(seen?.routes[0].origin, 'VirtualService prod/reviews http[0]');
    const scoped = compile(input(toV2, s), productpage).routeTables[0].virtualHosts;
    assert.equal(scoped[0].routes[0].name, 'default');
    // Imported from prod too: the VirtualService wins, and its destination's cluster comes along.
    const both = sidecar('default', 'default', egress('./reviews.default.svc.cluster.local', 'prod/*'));
    assert.equal(
      compile(input(toV2, both), productpage).routeTables[0].virtualHosts.find((v) =>
        v.name.startsWith('reviews'),
      )?.routes[0].origin,
      'VirtualService prod/reviews http[0]',
    );
    assert.ok(clustersOf(input(toV2, both)).includes('outbound|9080||ratings.default.svc.cluster.local'));
  });

  test('a change outside the scope leaves the snapshot version as it was: no push', () => {
    const s = sidecar('default', 'default', egress('./reviews.default.svc.cluster.local'));
    const before = compile(input(s), productpage).version;
    const more = compile(input(s, svc('new', 'prod')), productpage).version;
    assert.equal(more, before);
    const inside = compile(
      input(
        s,
        vs('r', 'default', {
          hosts: ['reviews'],
          http: [{ timeout: '1s', route: [{ destination: { host: 'reviews' } }] }],
        }),
      ),
      productpage,
    ).version;
    assert.notEqual(inside, before);
  });

  test('proxies with the same Sidecar share one view; a different Sidecar gets its own', () => {
    const s = sidecar('pp', 'default', {
      workloadSelector: { labels: { app: 'productpage' } },
      ...egress('./reviews.default.svc.cluster.local'),
    });
    const i = input(s);
    assert.notEqual(compile(i, productpage).version, compile(i, proxies[1]).version);
    assert.equal(hostsOf(i).length, 1);
  });

  test('ingress defaultEndpoint: the inbound listener and cluster forward the port to the app port', () => {
    const s = sidecar('r', 'default', {
      workloadSelector: { labels: { app: 'reviews' } },
      ingress: [
        { port: { number: 9080, protocol: 'HTTP', name: 'http' }, defaultEndpoint: '127.0.0.1:8080' },
      ],
    });
    const snap = compile(input(s), proxies[1]);
    const inbound = snap.listeners[1] as InboundListener;
    assert.deepEqual(inbound.endpoints, { '9080': 8080 });
    assert.equal(snap.clusters.find((c) => c.name === 'inbound|9080||')?.endpoints[0].port, 8080);
    assert.equal((compile(input(s), productpage).listeners[1] as InboundListener).endpoints, undefined);
  });

  test('outboundTrafficPolicy on the outbound listener, only where a Sidecar sets it', () => {
    const s = sidecar('default', 'default', { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } });
    const { addresses: _, ...outbound } = compile(input(s), productpage).listeners[0] as OutboundListener;
    assert.deepEqual(outbound, {
      name: 'outbound',
      type: 'outbound',
      routeTable: 'outbound',
      outboundTrafficPolicy: 'REGISTRY_ONLY',
    });
    assert.equal('outboundTrafficPolicy' in compile(input(), productpage).listeners[0], false);
    // The route table's catch-all follows the workload's policy, and says who set it.
    const allowAny = sidecar('default', 'default', { outboundTrafficPolicy: { mode: 'ALLOW_ANY' } });
    const last = compile(input(allowAny), productpage).routeTables[0].virtualHosts.at(-1)!;
    assert.equal(last.name, 'allow_any');
    assert.match(last.routes[0].origin, /^Sidecar default\/default outboundTrafficPolicy ALLOW_ANY/);
    assert.equal(hostsOf(input(s)).length, 5, 'no egress: */*');
  });
});
