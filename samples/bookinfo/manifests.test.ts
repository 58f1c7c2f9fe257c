// Static checks of mesh.yaml and the networking scenarios: they parse, name what they should, and
// every route lands on a subset that exists and on workloads that carry its labels.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeDocuments } from '../../src/api/decode.ts';
import { validateText } from '../../src/api/validate.ts';

const here = dirname(fileURLToPath(import.meta.url));

// biome-ignore lint/suspicious/noExplicitAny: manifests are free-form here
type Doc = any;

function load(file: string): Doc[] {
  const { documents, issues } = decodeDocuments(readFileSync(file, 'utf8'), file);
  assert.deepEqual(issues, [], file);
  return documents.map((d) => d.value);
}

const mesh = load(join(here, 'mesh.yaml'));
const networkingDir = join(here, 'networking');
const scenarios = new Map(
  readdirSync(networkingDir)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => [f, load(join(networkingDir, f))]),
);
const APPS = ['productpage', 'details', 'reviews', 'ratings'];

describe('mesh.yaml', () => {
  it('declares one Service per app with port http/9080 and an app selector', () => {
    const services = mesh.filter((d) => d.kind === 'Service' && d.metadata.namespace === 'default');
    assert.deepEqual(services.map((s) => s.metadata.name).sort(), [...APPS].sort());
    for (const s of services) {
      assert.equal(s.apiVersion, 'v1');
      assert.equal(s.metadata.namespace, 'default');
      assert.deepEqual(s.spec.selector, { app: s.metadata.name });
      assert.deepEqual(s.spec.ports, [{ name: 'http', port: 9080, targetPort: 9080 }]);
    }
  });

  it('declares a Workload per version whose program exists, plus the ingress gateway', () => {
    const workloads = mesh.filter((d) => d.kind === 'Workload');
    for (const w of workloads) assert.equal(w.apiVersion, 'trellis.dev/v1alpha1');
    assert.deepEqual(workloads.map((w) => w.metadata.name).sort(), [
      'details-v1',
      'istio-ingressgateway',
      'productpage-v1',
      'ratings-v1',
      'reviews-v1',
      'reviews-v2',
      'reviews-v3',
    ]);
    for (const w of workloads.filter((w) => w.spec.role !== 'gateway')) {
      const app = w.spec.labels.app;
      assert.ok(APPS.includes(app), w.metadata.name);
      assert.equal(w.metadata.name, `${app}-${w.spec.labels.version}`);
      assert.equal(w.spec.command, 'node');
      assert.ok(existsSync(join(here, w.spec.workingDir ?? '.', w.spec.args[0])), w.spec.args[0]);
      assert.equal(w.spec.serviceAccount, `bookinfo-${app}`);
      assert.deepEqual(w.spec.ports, [{ name: 'http', port: 9080, protocol: 'HTTP' }]);
      assert.equal(w.spec.readinessProbe.httpGet.path, '/health');
    }
    const env = (name: string) => workloads.find((w) => w.metadata.name === name).spec.env;
    assert.equal(env('reviews-v1'), undefined);
    assert.deepEqual(env('reviews-v2'), { ENABLE_RATINGS: 'true', STAR_COLOR: 'black' });
    assert.deepEqual(env('reviews-v3'), { ENABLE_RATINGS: 'true', STAR_COLOR: 'red' });

    const gw = workloads.find((w) => w.spec.role === 'gateway');
    assert.equal(gw.metadata.namespace, 'istio-system');
    assert.equal(gw.spec.labels.istio, 'ingressgateway');
    // Istio's model: the gateway's container listens on 8080/8443, its Service maps 80/443 to them.
    assert.deepEqual(gw.spec.ports, [
      { name: 'http2', port: 8080, hostPort: 8080 },
      { name: 'https', port: 8443, hostPort: 8443 },
    ]);
    const svc = mesh.find((d) => d.kind === 'Service' && d.metadata.name === 'istio-ingressgateway');
    assert.equal(svc.metadata.namespace, 'istio-system');
    assert.deepEqual(svc.spec.selector, { istio: 'ingressgateway' });
    assert.deepEqual(svc.spec.ports, [
      { name: 'http2', port: 80, targetPort: 8080 },
      { name: 'https', port: 443, targetPort: 8443 },
    ]);
  });

  it('includes the Gateway and VirtualService of networking/bookinfo-gateway.yaml', () => {
    // The same resources as Istio's file, in the mesh's namespace and API version.
    const routing = mesh.filter((d) => d.apiVersion === 'networking.istio.io/v1');
    const istio = scenarios.get('bookinfo-gateway.yaml')!;
    assert.deepEqual(
      routing.map((d) => [d.kind, d.metadata.name, d.metadata.namespace, d.spec]),
      istio.map((d) => [d.kind, d.metadata.name, 'default', d.spec]),
    );
  });
});

describe('networking scenarios', () => {
  it("has Istio's file names, all networking.istio.io/v1 but Istio's own bookinfo-gateway.yaml", () => {
    assert.deepEqual(
      [...scenarios.keys()].sort(),
      [
        'bookinfo-gateway.yaml',
        'destination-rule-all.yaml',
        'destination-rule-reviews.yaml',
        'fault-injection-details-v1.yaml',
        'virtual-service-all-v1.yaml',
        'virtual-service-ratings-test-abort.yaml',
        'virtual-service-ratings-test-delay.yaml',
        'virtual-service-reviews-50-v3.yaml',
        'virtual-service-reviews-80-20.yaml',
        'virtual-service-reviews-test-v2.yaml',
        'virtual-service-reviews-v2-v3.yaml',
        'virtual-service-reviews-v3.yaml',
      ].sort(),
    );
    for (const [file, docs] of scenarios) {
      assert.ok(docs.length > 0, file);
      // bookinfo-gateway.yaml is Istio's file unchanged, which still says v1alpha3.
      const version =
        file === 'bookinfo-gateway.yaml' ? 'networking.istio.io/v1alpha3' : 'networking.istio.io/v1';
      for (const d of docs) assert.equal(d.apiVersion, version, file);
    }
  });

  it('bookinfo-gateway binds the gateway and sends the page paths to productpage', () => {
    const [gateway, vs] = scenarios.get('bookinfo-gateway.yaml')!;
    assert.equal(gateway.kind, 'Gateway');
    assert.equal(gateway.metadata.name, 'bookinfo-gateway');
    assert.deepEqual(gateway.spec.selector, { istio: 'ingressgateway' });
    assert.deepEqual(gateway.spec.servers, [
      { port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*'] },
    ]);
    assert.equal(vs.kind, 'VirtualService');
    assert.deepEqual(vs.spec.gateways, ['bookinfo-gateway']);
    assert.deepEqual(vs.spec.http[0].match, [
      { uri: { exact: '/productpage' } },
      { uri: { prefix: '/static' } },
      { uri: { exact: '/login' } },
      { uri: { exact: '/logout' } },
      { uri: { prefix: '/api/v1/products' } },
    ]);
    assert.deepEqual(vs.spec.http[0].route, [
      { destination: { host: 'productpage', port: { number: 9080 } } },
    ]);
  });

  it('routes only to subsets destination-rule-all defines, with weights summing to 100', () => {
    const subsets = new Map<string, Map<string, Record<string, string>>>();
    for (const dr of scenarios.get('destination-rule-all.yaml')!) {
      assert.equal(dr.kind, 'DestinationRule');
      assert.equal(dr.spec.trafficPolicy, undefined);
      subsets.set(dr.spec.host, new Map(dr.spec.subsets.map((s: Doc) => [s.name, s.labels])));
    }
    assert.deepEqual([...subsets.keys()].sort(), [...APPS].sort());
    const workloadLabels = mesh.filter((d) => d.kind === 'Workload').map((w) => w.spec.labels);

    for (const [file, docs] of scenarios) {
      if (!file.startsWith('virtual-service-')) continue;
      for (const vs of docs) {
        assert.equal(vs.kind, 'VirtualService', file);
        for (const rule of vs.spec.http) {
          const weights = rule.route.map((r: Doc) => r.weight ?? 100);
          if (rule.route.length > 1)
            assert.equal(
              weights.reduce((a: number, b: number) => a + b, 0),
              100,
              file,
            );
          for (const { destination } of rule.route) {
            assert.ok(vs.spec.hosts.includes(destination.host), file);
            const labels = subsets.get(destination.host)?.get(destination.subset);
            assert.ok(labels, `${file}: ${destination.host}/${destination.subset}`);
            // Something in the mesh answers for the subset.
            assert.ok(
              workloadLabels.some(
                (l) =>
                  l.app === destination.host &&
                  Object.entries(labels as Record<string, string>).every(([k, v]) => l[k] === v),
              ),
              `${file}: no workload for ${destination.host}/${destination.subset}`,
            );
          }
        }
      }
    }
  });

  it('reviews-test-v2 sends jason to v2 and everyone else to v1', () => {
    const [vs] = scenarios.get('virtual-service-reviews-test-v2.yaml')!;
    assert.deepEqual(vs.spec.http[0].match, [{ headers: { 'end-user': { exact: 'jason' } } }]);
    assert.equal(vs.spec.http[0].route[0].destination.subset, 'v2');
    assert.equal(vs.spec.http[1].match, undefined);
    assert.equal(vs.spec.http[1].route[0].destination.subset, 'v1');
  });

  it('the reviews splits send the documented shares', () => {
    const split = (file: string) =>
      Object.fromEntries(
        scenarios.get(file)![0].spec.http[0].route.map((r: Doc) => [r.destination.subset, r.weight ?? 100]),
      );
    assert.deepEqual(split('virtual-service-reviews-50-v3.yaml'), { v1: 50, v3: 50 });
    assert.deepEqual(split('virtual-service-reviews-80-20.yaml'), { v1: 80, v2: 20 });
    assert.deepEqual(split('virtual-service-reviews-v2-v3.yaml'), { v2: 50, v3: 50 });
    assert.deepEqual(split('virtual-service-reviews-v3.yaml'), { v3: 100 });
    const allV1 = scenarios.get('virtual-service-all-v1.yaml')!;
    assert.deepEqual(allV1.map((vs: Doc) => vs.metadata.name).sort(), [...APPS].sort());
    for (const vs of allV1) assert.equal(vs.spec.http[0].route[0].destination.subset, 'v1');
  });
});

describe('security/', () => {
  it("holds Istio's authorization task policies, valid and enforced (no warning)", () => {
    const dir = join(here, 'security');
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(files.sort(), [
      'allow-nothing.yaml',
      'deny-api-reviews.yaml',
      'details-viewer.yaml',
      'productpage-viewer.yaml',
      'ratings-viewer.yaml',
      'reviews-viewer.yaml',
    ]);
    for (const f of files) {
      const r = validateText(readFileSync(join(dir, f), 'utf8'), f);
      assert.deepEqual([...r.errors, ...r.warnings], [], f);
      assert.deepEqual(
        r.resources.map((x) => x.kind),
        ['AuthorizationPolicy'],
        f,
      );
    }
  });
});
