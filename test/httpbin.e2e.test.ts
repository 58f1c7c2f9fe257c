// Istio's httpbin tasks on `trellis up samples/httpbin/httpbin.yaml`, with the sample's files: circuit
// breaking under concurrent load (503 UO, and the proxy's counter agrees), mirroring to v2, retries
// against a flaky backend and CORS. Requests go through httpbin-v1's sidecar, as an app beside it
// would send them (its outbound listener as HTTP proxy).
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runLoad } from '../samples/httpbin/load.ts';
import { Mesh, ROOT, until } from './support/mesh.ts';

const NET = path.join(ROOT, 'samples/httpbin/networking');
let mesh: Mesh;
let proxyEnv: NodeJS.ProcessEnv;

function apply(...files: string[]): number {
  let revision = 0;
  for (const f of files) {
    const r = mesh.cli(['apply', '-f', path.join(NET, f)]);
    assert.equal(r.code, 0, `apply ${f}: ${r.stderr}${r.stdout}`);
    assert.doesNotMatch(r.stderr, /not yet enforced/, f);
    revision = Number(/revision (\d+)/.exec(r.stdout)?.[1]);
  }
  return revision;
}

const converged = (revision: number) => mesh.converged(mesh.info.instances.length, revision);

/** A sample of a proxy's own metrics: the sum over lines of `name` with every label given. */
async function metric(workload: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const admin = mesh.instance(workload).adminPort;
  const text = await (await fetch(`http://127.0.0.1:${admin}/stats/prometheus`)).text();
  let total = 0;
  for (const line of text.split('\n'))
    if (line.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

describe("Istio's httpbin tasks", { timeout: 180_000 }, () => {
  before(async () => {
    mesh = await Mesh.up('samples/httpbin/httpbin.yaml');
    proxyEnv = { HTTP_PROXY: `http://127.0.0.1:${mesh.instance('httpbin-v1').outboundPort}` };
  });
  after(async () => {
    await mesh?.down();
  });

  test('circuit breaking: fortio-like load with 3 connections overflows, flagged UO and counted', async () => {
    await converged(apply('destination-rule-httpbin-circuit-breaker.yaml'));
    const cluster = 'outbound|8000||httpbin.default.svc.cluster.local';
    const before = await metric('httpbin-v1', 'envoy_cluster_upstream_rq_pending_overflow', {
      cluster_name: cluster,
    });
    const r = await runLoad({ url: 'http://httpbin:8000/get', connections: 3, requests: 60, proxyEnv });
    const ok = r.codes['200'] ?? 0;
    const overflow = r.codes['503'] ?? 0;
    assert.equal(ok + overflow, 60, JSON.stringify(r.codes));
    assert.ok(ok > 0 && overflow > 0, `a share overflows: ${JSON.stringify(r.codes)}`);
    const after = await metric('httpbin-v1', 'envoy_cluster_upstream_rq_pending_overflow', {
      cluster_name: cluster,
    });
    assert.equal(after - before, overflow, "the proxy's counter agrees with the client");
    assert.equal(
      await metric('httpbin-v1', 'istio_requests_total', { reporter: 'source', response_flags: 'UO' }),
      overflow,
    );
  });

  test('mirroring: v1 answers, v2 gets the copies', async () => {
    await converged(apply('destination-rule-httpbin-v1-v2.yaml', 'virtual-service-httpbin-mirror.yaml'));
    const seen = await metric('httpbin-v2', 'istio_requests_total', { reporter: 'destination' });
    for (let i = 0; i < 5; i++) {
      const r = await runLoad({ url: 'http://httpbin:8000/headers', requests: 1, proxyEnv });
      assert.deepEqual(r.codes, { 200: 1 });
    }
    await until('the copies to reach v2', async () => {
      return (await metric('httpbin-v2', 'istio_requests_total', { reporter: 'destination' })) >= seen + 5;
    });
  });

  test('retries against a flaky backend: 2 failures are retried away', async () => {
    await converged(apply('virtual-service-httpbin-retries.yaml'));
    const r = await runLoad({ url: 'http://httpbin:8000/flaky/e2e/2', requests: 1, proxyEnv });
    assert.deepEqual(r.codes, { 200: 1 });
  });

  test('CORS: the proxy answers the preflight', async () => {
    await converged(apply('virtual-service-httpbin-cors.yaml'));
    const r = await runLoad({
      url: 'http://httpbin:8000/get',
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
      requests: 1,
      proxyEnv,
    });
    assert.deepEqual(r.codes, { 200: 1 });
  });
});
