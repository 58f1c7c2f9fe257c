// Static checks of httpbin.yaml and networking/: they pass the project's own validator (the only
// warnings allowed are "not yet enforced" ones), and carry the values of Istio's tasks.
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

const mesh = load(join(here, 'httpbin.yaml'));
const networkingDir = join(here, 'networking');
const files = readdirSync(networkingDir).filter((f) => f.endsWith('.yaml'));
const scenarios = new Map(files.map((f) => [f, load(join(networkingDir, f))]));

describe('httpbin.yaml', () => {
  it('validates with no errors and no warnings', () => {
    const r = validateText(readFileSync(join(here, 'httpbin.yaml'), 'utf8'), 'httpbin.yaml');
    assert.deepEqual([...r.errors, ...r.warnings], []);
    assert.deepEqual(
      r.resources.map((x) => x.kind),
      ['Service', 'Workload', 'Workload'],
    );
  });

  it("declares Istio's httpbin Service: port http 8000 to target port 8080", () => {
    const [svc] = mesh.filter((d) => d.kind === 'Service');
    assert.equal(svc.metadata.name, 'httpbin');
    assert.equal(svc.metadata.namespace, 'default');
    assert.deepEqual(svc.spec.selector, { app: 'httpbin' });
    assert.deepEqual(svc.spec.ports, [{ name: 'http', port: 8000, targetPort: 8080 }]);
  });

  it('runs main.ts as v1 and v2, each told its version', () => {
    const workloads = mesh.filter((d) => d.kind === 'Workload');
    assert.deepEqual(
      workloads.map((w) => w.metadata.name),
      ['httpbin-v1', 'httpbin-v2'],
    );
    for (const w of workloads) {
      const version = w.spec.labels.version;
      assert.equal(w.apiVersion, 'trellis.dev/v1alpha1');
      assert.equal(w.metadata.name, `httpbin-${version}`);
      assert.deepEqual(w.spec.labels, { app: 'httpbin', version });
      assert.deepEqual(w.spec.env, { SERVICE_VERSION: version });
      assert.equal(w.spec.command, 'node');
      assert.ok(existsSync(join(here, w.spec.workingDir ?? '.', w.spec.args[0])), w.spec.args[0]);
      assert.deepEqual(w.spec.ports, [{ name: 'http', port: 8080, protocol: 'HTTP' }]);
      assert.equal(w.spec.readinessProbe.httpGet.path, '/health');
    }
  });
});

describe('networking/', () => {
  it('holds the circuit-breaking, mirroring, retries and CORS task files, valid with no warnings', () => {
    assert.deepEqual(files.sort(), [
      'destination-rule-httpbin-circuit-breaker.yaml',
      'destination-rule-httpbin-v1-v2.yaml',
      'virtual-service-httpbin-cors.yaml',
      'virtual-service-httpbin-mirror.yaml',
      'virtual-service-httpbin-retries.yaml',
      'virtual-service-httpbin-v1.yaml',
    ]);
    for (const f of files) {
      const r = validateText(readFileSync(join(networkingDir, f), 'utf8'), f);
      assert.deepEqual([...r.errors, ...r.warnings], [], f);
      for (const d of scenarios.get(f)!) assert.equal(d.apiVersion, 'networking.istio.io/v1', f);
    }
  });

  it("the circuit breaker has the task's limits", () => {
    const [dr] = scenarios.get('destination-rule-httpbin-circuit-breaker.yaml')!;
    assert.equal(dr.kind, 'DestinationRule');
    assert.equal(dr.metadata.name, 'httpbin');
    assert.equal(dr.spec.host, 'httpbin');
    assert.deepEqual(dr.spec.trafficPolicy, {
      connectionPool: {
        tcp: { maxConnections: 1 },
        http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 },
      },
      outlierDetection: {
        consecutive5xxErrors: 1,
        interval: '1s',
        baseEjectionTime: '3m',
        maxEjectionPercent: 100,
      },
    });
  });

  it('mirroring routes all of httpbin to v1, then mirrors all of it to v2, on subsets the workloads carry', () => {
    const [dr] = scenarios.get('destination-rule-httpbin-v1-v2.yaml')!;
    assert.equal(dr.spec.host, 'httpbin');
    const subsets = new Map(dr.spec.subsets.map((s: Doc) => [s.name, s.labels]));
    assert.deepEqual(Object.fromEntries(subsets), { v1: { version: 'v1' }, v2: { version: 'v2' } });
    const labels = mesh.filter((d) => d.kind === 'Workload').map((w) => w.spec.labels);
    for (const [name, sel] of subsets) {
      assert.ok(
        labels.some((l) => Object.entries(sel as Record<string, string>).every(([k, v]) => l[k] === v)),
        `no workload for subset ${name}`,
      );
    }

    const [allV1] = scenarios.get('virtual-service-httpbin-v1.yaml')!;
    const [mirror] = scenarios.get('virtual-service-httpbin-mirror.yaml')!;
    for (const vs of [allV1, mirror]) {
      assert.equal(vs.kind, 'VirtualService');
      assert.equal(vs.metadata.name, 'httpbin');
      assert.deepEqual(vs.spec.hosts, ['httpbin']);
      assert.deepEqual(vs.spec.http[0].route, [
        { destination: { host: 'httpbin', subset: 'v1' }, weight: 100 },
      ]);
    }
    assert.equal(allV1.spec.http[0].mirror, undefined);
    assert.deepEqual(mirror.spec.http[0].mirror, { host: 'httpbin', subset: 'v2' });
    assert.deepEqual(mirror.spec.http[0].mirrorPercentage, { value: 100 });
  });
});
