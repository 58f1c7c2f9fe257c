import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Resource } from '../api/resource.ts';
import { compile } from './compile.ts';
import { exportedTo } from './export-to.ts';
import type { ProxyNode, ProxySnapshot } from './snapshot.ts';

const REVIEWS = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${REVIEWS}`;

const sidecar = (namespace: string, app: string, labels: Record<string, string> = {}): ProxyNode => ({
  id: `${app}-0.${namespace}`,
  role: 'sidecar',
  workload: app,
  namespace,
  serviceAccount: app,
  labels: { app, ...labels },
  address: '127.0.0.1',
  inboundPort: 15006,
  ports: [{ name: 'http', port: 9080 }],
  healthy: true,
});

const reviews = sidecar('default', 'reviews', { version: 'v1' });
const inDefault = sidecar('default', 'productpage');
const inOther = sidecar('other', 'client');
const gateway: ProxyNode = {
  ...sidecar('istio-system', 'gw'),
  role: 'gateway',
  labels: { istio: 'ingressgateway' },
  ports: [],
  inboundPort: undefined,
};

let age = 0;
const res = (
  kind: string,
  namespace: string,
  name: string,
  spec: unknown,
  annotations?: object,
): Resource => ({
  apiVersion: kind === 'Service' || kind === 'ConfigMap' ? 'v1' : 'networking.istio.io/v1',
  kind,
  metadata: {
    name,
    namespace,
    creationTimestamp: `2024-01-01T00:00:${String(age++).padStart(2, '0')}Z`,
    ...(annotations ? { annotations: annotations as Record<string, string> } : {}),
  },
  spec,
});

const service = (annotations?: object) =>
  res(
    'Service',
    'default',
    'reviews',
    { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080 }] },
    annotations,
  );
const mesh = (text: string) => res('ConfigMap', 'istio-system', 'istio', { data: { mesh: text } });
const vs = (namespace: string, name: string, extra: object = {}) =>
  res('VirtualService', namespace, name, {
    hosts: [REVIEWS],
    http: [{ route: [{ destination: { host: REVIEWS } }] }],
    ...extra,
  });
const dr = (namespace: string, name: string, extra: object = {}) =>
  res('DestinationRule', namespace, name, { host: REVIEWS, ...extra });

const snapshotFor = (node: ProxyNode, resources: Resource[]): ProxySnapshot =>
  compile(
    {
      revision: 1,
      resources,
      proxies: [reviews, inDefault, inOther, gateway],
      mesh: { trustDomain: 'cluster.local' },
    },
    node,
  );

const reviewsHost = (s: ProxySnapshot) =>
  s.routeTables.find((t) => t.name === 'outbound')?.virtualHosts.find((v) => v.name === `${REVIEWS}:9080`);

test('exportedTo: ".", "*", "~", names, and defaults for an empty list', () => {
  const table: [string[] | undefined, string, boolean][] = [
    [undefined, 'other', true],
    [[], 'other', true],
    [['.'], 'default', true],
    [['.'], 'other', false],
    [['*'], 'other', true],
    [['~'], 'default', false],
    [['other'], 'other', true],
    [['other'], 'default', false],
    [['.', 'other'], 'other', true],
  ];
  for (const [to, ns, want] of table)
    assert.equal(exportedTo(to, 'default', ns, ['*']), want, `${JSON.stringify(to)} → ${ns}`);
  assert.equal(exportedTo(undefined, 'default', 'other', ['.']), false, 'the default stands in');
});

test('VirtualService exportTo decides which proxies it routes for', () => {
  const table: { name: string; resources: Resource[]; want: Record<string, string> }[] = [
    {
      name: 'no exportTo: everywhere',
      resources: [vs('default', 'r')],
      want: { default: 'default/r', other: 'default/r', gateway: '' },
    },
    {
      name: '"." only its own namespace; others get the default route',
      resources: [vs('default', 'r', { exportTo: ['.'] })],
      want: { default: 'default/r', other: 'Service default/reviews (no VirtualService)' },
    },
    {
      name: 'a namespace name',
      resources: [vs('default', 'r', { exportTo: ['other'] })],
      want: { default: 'Service default/reviews (no VirtualService)', other: 'default/r' },
    },
    {
      name: '"~" nowhere',
      resources: [vs('default', 'r', { exportTo: ['~'] })],
      want: {
        default: 'Service default/reviews (no VirtualService)',
        other: 'Service default/reviews (no VirtualService)',
      },
    },
    {
      name: 'the oldest visible one wins the host: a hidden older one does not shadow it',
      resources: [vs('default', 'old', { exportTo: ['.'] }), vs('other', 'own', { exportTo: ['.'] })],
      want: { default: 'default/old', other: 'other/own' },
    },
    {
      name: 'defaultVirtualServiceExportTo for one that sets none',
      resources: [mesh('defaultVirtualServiceExportTo: ["."]'), vs('default', 'r')],
      want: { default: 'default/r', other: 'Service default/reviews (no VirtualService)' },
    },
    {
      name: 'its own exportTo overrides the default',
      resources: [mesh('defaultVirtualServiceExportTo: ["~"]'), vs('default', 'r', { exportTo: ['*'] })],
      want: { default: 'default/r', other: 'default/r' },
    },
  ];
  for (const { name, resources, want } of table) {
    for (const [ns, origin] of Object.entries(want)) {
      if (ns === 'gateway') continue;
      const node = ns === 'default' ? inDefault : inOther;
      const route = reviewsHost(snapshotFor(node, [service(), ...resources]))?.routes[0];
      const got = route?.origin.startsWith('VirtualService ')
        ? route.origin.slice('VirtualService '.length).split(' ')[0]
        : route?.origin;
      assert.equal(got, origin, `${name}: proxy in ${ns}`);
    }
  }
});

test('a gateway applies only the VirtualServices exported to its namespace', () => {
  const gw = res('Gateway', 'istio-system', 'gw', {
    selector: { istio: 'ingressgateway' },
    servers: [{ port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*/*'] }],
  });
  const bound = (exportTo?: string[]) =>
    res('VirtualService', 'default', 'front', {
      hosts: ['bookinfo.example.com'],
      gateways: ['istio-system/gw'],
      http: [{ route: [{ destination: { host: REVIEWS } }] }],
      ...(exportTo ? { exportTo } : {}),
    });
  const hosts = (exportTo?: string[]) =>
    snapshotFor(gateway, [service(), gw, bound(exportTo)])
      .routeTables.find((t) => t.name === 'http.8080')
      ?.virtualHosts.map((v) => v.name);
  assert.deepEqual(hosts(), ['bookinfo.example.com:8080']);
  assert.deepEqual(hosts(['.']), []);
  assert.deepEqual(hosts(['istio-system']), ['bookinfo.example.com:8080']);
});

test('a delegate VirtualService must be exported to the root VirtualService namespace', () => {
  const root = res('VirtualService', 'default', 'root', {
    hosts: [REVIEWS],
    http: [{ delegate: { name: 'leaf', namespace: 'team' } }],
  });
  const leaf = (exportTo: string[]) =>
    res('VirtualService', 'team', 'leaf', {
      http: [{ route: [{ destination: { host: REVIEWS } }] }],
      exportTo,
    });
  const action = (exportTo: string[]) =>
    reviewsHost(snapshotFor(inDefault, [service(), root, leaf(exportTo)]))?.routes[0].action;
  assert.equal(action(['default'])?.type, 'forward');
  const hidden = action(['.']);
  assert.ok(hidden?.type === 'direct');
  assert.equal(hidden.status, 500);
  assert.match(hidden.body ?? '', /VirtualService team\/leaf, which is not exported to namespace default/);
});

test("DestinationRule lookup: client namespace, then the service's, then the root; unexported rules skipped", () => {
  const root = dr('istio-system', 'mesh-wide');
  const table: { name: string; resources: Resource[]; want: Record<string, string | undefined> }[] = [
    {
      name: 'only the root namespace has one',
      resources: [root],
      want: { default: 'istio-system/mesh-wide', other: 'istio-system/mesh-wide' },
    },
    {
      name: "the service's namespace before the root",
      resources: [root, dr('default', 'svc')],
      want: { default: 'default/svc', other: 'default/svc' },
    },
    {
      name: "the client's namespace first",
      resources: [root, dr('default', 'svc'), dr('other', 'mine')],
      want: { default: 'default/svc', other: 'other/mine' },
    },
    {
      name: 'a rule not exported to the client is skipped, the lookup goes on',
      resources: [root, dr('default', 'svc', { exportTo: ['.'] })],
      want: { default: 'default/svc', other: 'istio-system/mesh-wide' },
    },
    {
      name: "a rule in the client's namespace exported elsewhere is not the client's",
      resources: [dr('default', 'svc'), dr('other', 'mine', { exportTo: ['default'] })],
      want: { default: 'default/svc', other: 'default/svc' },
    },
    {
      name: 'a namespace off the lookup path does not count, even exported everywhere',
      resources: [dr('third', 'stray', { exportTo: ['*'] })],
      want: { default: undefined, other: undefined },
    },
    {
      name: 'defaultDestinationRuleExportTo for rules that set none',
      resources: [mesh('defaultDestinationRuleExportTo: ["."]'), dr('default', 'svc'), root],
      want: { default: 'default/svc', other: undefined },
    },
  ];
  for (const { name, resources, want } of table) {
    for (const [ns, origin] of Object.entries(want)) {
      const node = ns === 'default' ? inDefault : inOther;
      const c = snapshotFor(node, [service(), ...resources]).clusters.find((x) => x.name === CLUSTER);
      assert.equal(c?.origin?.replace('DestinationRule ', ''), origin, `${name}: proxy in ${ns}`);
    }
  }
});

test('rules of one namespace visible to the client merge, oldest first; a hidden one does not join', () => {
  const subsetsFor = (node: ProxyNode, resources: Resource[]) => {
    const route = { http: [{ route: [{ destination: { host: REVIEWS, subset: 'v2' } }] }] };
    const s = snapshotFor(node, [service(), vs('default', 'r', route), ...resources]);
    return s.clusters.find((c) => c.name === `outbound|9080|v2|${REVIEWS}`);
  };
  const a = dr('default', 'a', { subsets: [{ name: 'v1', labels: { version: 'v1' } }] });
  const b = dr('default', 'b', { subsets: [{ name: 'v2', labels: { version: 'v1' } }], exportTo: ['.'] });
  // In its own namespace both apply: subset v2 (from the newer rule) selects the v1 pod.
  assert.equal(subsetsFor(inDefault, [a, b])?.endpoints.length, 1);
  assert.equal(subsetsFor(inDefault, [a, b])?.origin, 'DestinationRule default/a');
  // Elsewhere only `a` does, which has no v2: the subset selects nothing.
  assert.equal(subsetsFor(inOther, [a, b])?.endpoints.length, 0);
});

test('the Service exportTo annotation and defaultServiceExportTo decide who has the service', () => {
  const table: { name: string; resources: Resource[]; want: Record<string, boolean> }[] = [
    { name: 'no annotation', resources: [service()], want: { default: true, other: true } },
    {
      name: '"."',
      resources: [service({ 'networking.istio.io/exportTo': '.' })],
      want: { default: true, other: false },
    },
    {
      name: 'a list with blanks',
      resources: [service({ 'networking.istio.io/exportTo': ' other , third' })],
      want: { default: false, other: true },
    },
    {
      name: '"~"',
      resources: [service({ 'networking.istio.io/exportTo': '~' })],
      want: { default: false, other: false },
    },
    {
      name: 'defaultServiceExportTo',
      resources: [mesh('defaultServiceExportTo: ["."]'), service()],
      want: { default: true, other: false },
    },
  ];
  for (const { name, resources, want } of table)
    for (const [ns, sees] of Object.entries(want)) {
      const node = ns === 'default' ? inDefault : inOther;
      assert.equal(reviewsHost(snapshotFor(node, resources)) !== undefined, sees, `${name}: proxy in ${ns}`);
    }
});

test('defaultServiceExportTo applies to a ServiceEntry that sets no exportTo', () => {
  const entry = res('ServiceEntry', 'default', 'api', {
    hosts: ['api.example.com'],
    ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
    resolution: 'DNS',
  });
  const sees = (node: ProxyNode, resources: Resource[]) =>
    snapshotFor(node, resources)
      .routeTables.find((t) => t.name === 'outbound')
      ?.virtualHosts.some((v) => v.name === 'api.example.com:80');
  assert.equal(sees(inOther, [entry]), true);
  assert.equal(sees(inOther, [mesh('defaultServiceExportTo: ["."]'), entry]), false);
  assert.equal(sees(inDefault, [mesh('defaultServiceExportTo: ["."]'), entry]), true);
});

test('a route to a service not exported to the proxy gets a cluster without endpoints that says why', () => {
  const hidden = service({ 'networking.istio.io/exportTo': '.' });
  const elsewhere = res('VirtualService', 'other', 'via', {
    hosts: ['front.other.svc.cluster.local'],
    http: [{ route: [{ destination: { host: REVIEWS, port: { number: 9080 } } }] }],
  });
  const front = res('Service', 'other', 'front', {
    selector: { app: 'client' },
    ports: [{ name: 'http', port: 9080 }],
  });
  const c = snapshotFor(inOther, [hidden, front, elsewhere]).clusters.find((x) => x.name === CLUSTER);
  assert.deepEqual(c?.endpoints, []);
  assert.equal(c?.origin, 'Service default/reviews is not exported to namespace other');
  // The same route in the service's own namespace reaches it.
  const own = snapshotFor(inDefault, [hidden, front, elsewhere]).clusters.find((x) => x.name === CLUSTER);
  assert.equal(own?.endpoints.length, 1);
});
