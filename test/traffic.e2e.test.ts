// HTTP traffic management through real proxies: retries (and Istio's default policy), per-try
// timeouts, fault injection, circuit breaking, outlier detection, load balancers, locality failover,
// mirroring, CORS, rewrites, header edits and delegation. One control plane, a client sidecar and a
// handful of backend apps, each behind its own sidecar; each test applies its VirtualServices and
// DestinationRules and waits until the client runs them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { ProxySnapshot } from '../src/compile/snapshot.ts';
import { type RunningControlPlane, startControlPlane } from '../src/controlplane/control-plane.ts';
import type { RunningProxy } from '../src/dataplane/proxy.ts';
import { SILENT } from '../src/lib/log.ts';
import { CLI, until } from './support/mesh.ts';
import { adminHeaders, meshProxy } from './support/platform.ts';

const FLAGS = 'x-trellis-response-flags';
const run = promisify(execFile);

interface Backend {
  name: string;
  server: http.Server;
  proxy: RunningProxy;
  /** Requests it received, by path. */
  hits: { path: string; host: string; method: string; headers: http.IncomingHttpHeaders }[];
  /** Answer 500 to /maybe. */
  failing: boolean;
  /** Added to every answer's latency. */
  delayMs: number;
}

let cp: RunningControlPlane;
let client: RunningProxy;
const backends = new Map<string, Backend>();
const counters = new Map<string, number>();

/** The app: small httpbin-like paths whose answers a test can steer. */
function app(b: Pick<Backend, 'name' | 'hits' | 'failing' | 'delayMs'>): http.RequestListener {
  return (req, res) => {
    const url = req.url ?? '/';
    // The sidecar's readiness probe (it alone comes without a request id): at once, never slowed.
    if (req.headers['x-request-id'] === undefined) return void res.end('ok');
    b.hits.push({ path: url, host: req.headers.host ?? '', method: req.method ?? '', headers: req.headers });
    const reply = (status: number, body: string, headers: http.OutgoingHttpHeaders = {}) =>
      setTimeout(() => {
        res.writeHead(status, { 'x-backend': b.name, ...headers });
        res.end(body);
      }, b.delayMs);
    const parts = url.split('?')[0].split('/').filter(Boolean);
    if (parts[0] === 'flaky') {
      // /flaky/<key>/<n>: the first n requests with the key fail with 503.
      const n = (counters.get(parts[1]) ?? 0) + 1;
      counters.set(parts[1], n);
      return reply(n <= Number(parts[2]) ? 503 : 200, `try ${n}`);
    }
    if (parts[0] === 'slow-first') {
      const n = (counters.get(parts[1]) ?? 0) + 1;
      counters.set(parts[1], n);
      if (n === 1) return void setTimeout(() => reply(200, 'late'), 2000).unref();
      return reply(200, `try ${n}`);
    }
    if (parts[0] === 'maybe') return reply(b.failing ? 500 : 200, b.name);
    if (parts[0] === 'status') return reply(Number(parts[1]), b.name);
    if (parts[0] === 'echo')
      return reply(200, JSON.stringify({ path: url, host: req.headers.host, headers: req.headers }), {
        'content-type': 'application/json',
        'x-remove-me': 'yes',
      });
    reply(200, b.name);
  };
}

async function backend(name: string, service: string, labels: Record<string, string>): Promise<Backend> {
  const b = { name, hits: [], failing: false, delayMs: 0 } as unknown as Backend;
  b.server = http.createServer(app(b));
  await new Promise<void>((r) => b.server.listen(0, '127.0.0.1', r));
  b.proxy = await meshProxy(
    cp.info,
    {
      id: `${name}-0`,
      role: 'sidecar',
      workload: name,
      namespace: 'default',
      serviceAccount: service,
      labels: { app: service, ...labels },
      ports: [{ name: 'http', port: 8080 }],
    },
    { appPort: (b.server.address() as AddressInfo).port, log: SILENT },
  );
  backends.set(name, b);
  return b;
}

const SERVICES = ['web', 'pool', 'cb', 'od', 'loc', 'lb'];

function servicesYaml(): string {
  return SERVICES.map(
    (s) => `apiVersion: v1
kind: Service
metadata: {name: ${s}}
spec:
  selector: {app: ${s}}
  ports: [{name: http, port: 8080, targetPort: 8080}]
`,
  ).join('---\n');
}

async function apply(yaml: string): Promise<void> {
  const res = await fetch(`${cp.info.api}/api/v1/apply`, {
    method: 'POST',
    headers: adminHeaders(cp.info),
    body: JSON.stringify({ sources: [{ file: 'test.yaml', text: yaml }] }),
  });
  assert.equal(res.status, 200, await res.text());
}

/** Applies and waits until the client's snapshot satisfies `ready`. */
async function applyUntil(yaml: string, ready: (s: ProxySnapshot) => boolean): Promise<void> {
  await apply(yaml);
  await until('the client to run the change', async () => {
    const s = client.current();
    return s !== undefined && ready(s);
  });
}

const cluster = (s: ProxySnapshot, name: string) => s.clusters.find((c) => c.name === name);
const fqdn = (svc: string, subset = '') => `outbound|8080|${subset}|${svc}.default.svc.cluster.local`;

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  ms: number;
}

/** A request from the client app through its sidecar (absolute form, as HTTP_PROXY sends it). */
function send(
  url: string,
  opts: { method?: string; headers?: http.OutgoingHttpHeaders; agent?: http.Agent } = {},
): Promise<Reply> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: client.ports.outbound,
        method: opts.method ?? 'GET',
        path: url,
        headers: opts.headers,
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            ms: performance.now() - start,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** The client proxy's metrics: one sample's value, or 0. */
async function stat(name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${client.ports.admin}/stats/prometheus`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

/** The real CLI against this control plane, as an operator runs it (not spawnSync: the control plane runs here). */
async function cli(args: string[]): Promise<string> {
  const args_ = [CLI, ...args, '--api', cp.info.api, '--token-file', cp.info.adminTokenFile];
  const { stdout } = await run(process.execPath, args_, { timeout: 30_000 });
  return stdout;
}

function countBy<T>(xs: T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of xs) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

describe('HTTP traffic management through real proxies', { timeout: 180_000 }, () => {
  before(async () => {
    const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-traffic-'));
    cp = await startControlPlane({
      stateDir,
      host: '127.0.0.1',
      apiPort: 0,
      xdsPort: 0,
      trustDomain: 'cluster.local',
      registryGraceMs: 5000,
      version: 'test',
      log: SILENT,
    });
    await apply(servicesYaml());
    for (const v of ['v1', 'v2', 'v3']) await backend(`web-${v}`, 'web', { version: v });
    for (const n of ['pool-1', 'pool-2']) await backend(n, 'pool', {});
    await backend('cb-1', 'cb', {});
    for (const n of ['od-1', 'od-2', 'od-3']) await backend(n, 'od', {});
    await backend('loc-a', 'loc', {
      'topology.kubernetes.io/region': 'r1',
      'topology.kubernetes.io/zone': 'a',
    });
    await backend('loc-a2', 'loc', {
      'topology.kubernetes.io/region': 'r1',
      'topology.kubernetes.io/zone': 'a',
    });
    await backend('loc-b', 'loc', {
      'topology.kubernetes.io/region': 'r1',
      'topology.kubernetes.io/zone': 'b',
    });
    for (const n of ['lb-1', 'lb-2', 'lb-3']) await backend(n, 'lb', {});
    client = await meshProxy(
      cp.info,
      {
        id: 'client-0',
        role: 'sidecar',
        workload: 'client',
        namespace: 'default',
        serviceAccount: 'client',
        labels: { app: 'client', 'topology.kubernetes.io/region': 'r1', 'topology.kubernetes.io/zone': 'a' },
        ports: [],
      },
      { log: SILENT },
    );
    await until(
      'every backend endpoint healthy in the client snapshot',
      async () => {
        const s = client.current();
        const eps = s?.clusters.flatMap((c) => c.endpoints) ?? [];
        return eps.length === backends.size && eps.every((e) => e.healthy);
      },
      30_000,
    );
    await apply(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`);
  });

  after(async () => {
    await client?.close();
    for (const b of backends.values()) {
      await b.proxy.close().catch(() => {});
      b.server.close();
    }
    await cp?.close();
  });

  test('a retry that succeeds, one that runs out (URX), and a per-try timeout', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /flaky}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /slow-first}}]
    retries: {attempts: 2, perTryTimeout: 300ms, retryOn: "5xx,reset"}
    route: [{destination: {host: web, subset: v1}}]
  - route: [{destination: {host: web, subset: v1}}]
`,
      (s) =>
        s.routeTables.some((t) => t.virtualHosts.some((v) => v.routes.some((r) => r.name.includes('web#1')))),
    );
    const v1 = fqdn('web', 'v1');

    const ok = await send('http://web:8080/flaky/a/2');
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'try 3', 'two 503s were retried');
    assert.ok((await stat('envoy_cluster_upstream_rq_retry_success', { cluster_name: v1 })) >= 1);

    const out = await send('http://web:8080/flaky/b/10');
    assert.equal(out.status, 503, 'the last answer goes downstream as it was');
    assert.equal(counters.get('b'), 4, 'one try and three retries');
    assert.ok((await stat('envoy_cluster_upstream_rq_retry_limit_exceeded', { cluster_name: v1 })) >= 1);
    assert.ok((await stat('istio_requests_total', { response_flags: 'URX', response_code: '503' })) >= 1);

    const slow = await send('http://web:8080/slow-first/c');
    assert.equal(slow.status, 200);
    assert.equal(slow.body, 'try 2');
    assert.ok(slow.ms >= 300 && slow.ms < 1500, `the first try was cut at 300ms (took ${slow.ms}ms)`);
    assert.ok((await stat('envoy_cluster_upstream_rq_per_try_timeout', { cluster_name: v1 })) >= 1);
  });

  test("Istio's default retry policy hides an endpoint dying mid-traffic", async () => {
    const dying = backends.get('pool-1')!;
    const results: Reply[] = [];
    let stop = false;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const loop = async () => {
      while (!stop) results.push(await send('http://pool:8080/', { agent }));
    };
    const loops = [loop(), loop(), loop(), loop()];
    await until('some traffic', async () => results.length > 100);
    // The endpoint goes away (its proxy stops listening and drains): new connections to it are
    // refused, which the default policy's connect-failure retries on the other endpoint.
    const closing = dying.proxy.close();
    const at = results.length;
    await until('traffic after the endpoint died', async () => results.length > at + 300);
    stop = true;
    await Promise.all(loops);
    await closing;
    agent.destroy();
    const failures = results.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.headers[FLAGS]}`);
    assert.deepEqual(failures, [], 'no failure reached the client');
    assert.ok(results.slice(-50).every((r) => r.headers['x-backend'] === 'pool-2'));
    assert.ok((await stat('envoy_cluster_upstream_rq_retry', { cluster_name: fqdn('pool') })) >= 1);
  });

  test('fault injection: the delay holds (at least 400 ms, within 25%), the abort percentage holds over 1000 requests', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /delayed}}]
    fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /grpc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: web, subset: v1}}]
  - match: [{uri: {prefix: /grpc-not}}]
    route: [{destination: {host: web, subset: v1}}]
  - fault: {abort: {httpStatus: 418, percentage: {value: 30}}}
    route: [{destination: {host: web, subset: v1}}]
`,
      (s) => JSON.stringify(s.routeTables).includes('"grpcStatus":14'),
    );
    // The delay the proxy adds: delayed requests against undelayed ones sent in between.
    const delayed: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await send('http://web:8080/delayed');
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-backend'], 'web-v1');
      delayed.push(r.ms);
      plain.push((await send('http://web:8080/grpc-not')).ms);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[2];
    const added = median(delayed) - median(plain);
    // Never much less than the delay (timer granularity); the upper bound is loose because a loaded
    // machine (CI, two cores) adds scheduling noise to one set of samples and not the other.
    assert.ok(added >= 390 && added <= 500, `the proxy added ${added}ms for a 400ms delay`);

    const grpc = await send('http://web:8080/grpc');
    assert.equal(grpc.status, 200);
    assert.equal(grpc.headers['grpc-status'], '14');
    assert.equal(grpc.headers[FLAGS], 'FI');

    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const codes: number[] = [];
    const batch = async () => {
      for (let i = 0; i < 125; i++) codes.push((await send('http://web:8080/any', { agent })).status);
    };
    await Promise.all(Array.from({ length: 8 }, batch));
    agent.destroy();
    const aborted = codes.filter((c) => c === 418).length;
    // Binomial(1000, 0.3): σ ≈ 14.5; ±4σ.
    assert.ok(aborted > 242 && aborted < 358, `${aborted} of 1000 aborted for 30%`);
    assert.equal(codes.filter((c) => c !== 418 && c !== 200).length, 0);
    assert.ok((await stat('trellis_fault_injected_total', { kind: 'abort' })) >= aborted);
    assert.ok((await stat('trellis_fault_injected_total', { kind: 'delay' })) >= 5);
  });

  test("circuit breaking: Istio's httpbin task load gives 503 UO, and the proxy's counters agree", async () => {
    backends.get('cb-1')!.delayMs = 50;
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cb}
spec:
  host: cb
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}
`,
      (s) => cluster(s, fqdn('cb'))?.connectionPool?.maxConnections === 1,
    );
    const before = await stat('envoy_cluster_upstream_rq_pending_overflow', { cluster_name: fqdn('cb') });
    const replies: Reply[] = [];
    const worker = async () => {
      for (let i = 0; i < 10; i++) replies.push(await send('http://cb:8080/get'));
    };
    // fortio load -c 3 -qps 0 -n 30, as the task runs it.
    await Promise.all([worker(), worker(), worker()]);
    const overflowed = replies.filter((r) => r.status === 503);
    assert.ok(overflowed.length > 0, 'some requests overflow');
    assert.ok(
      replies.some((r) => r.status === 200),
      'some get through',
    );
    assert.ok(
      overflowed.every((r) => r.headers[FLAGS] === 'UO'),
      'each overflow is flagged UO',
    );
    const after = await stat('envoy_cluster_upstream_rq_pending_overflow', { cluster_name: fqdn('cb') });
    assert.equal(after - before, overflowed.length, 'the counter counts every overflow');
    backends.get('cb-1')!.delayMs = 0;
  });

  test('http2MaxRequests: requests in flight over the limit overflow at once (UO)', async () => {
    backends.get('cb-1')!.delayMs = 100;
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cb}
spec:
  host: cb
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 1}}
`,
      (s) => cluster(s, fqdn('cb'))?.connectionPool?.maxRequests === 1,
    );
    const replies = await Promise.all([1, 2, 3].map(() => send('http://cb:8080/get')));
    assert.deepEqual(replies.map((r) => r.status).sort(), [200, 503, 503]);
    assert.ok(replies.filter((r) => r.status === 503).every((r) => r.headers[FLAGS] === 'UO'));
    backends.get('cb-1')!.delayMs = 0;
  });

  test('outlier detection ejects a failing endpoint, shows it, and lets it back after baseEjectionTime', async () => {
    const bad = backends.get('od-3')!;
    bad.failing = true;
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od}
spec:
  host: od
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 4s, maxEjectionPercent: 100}
`,
      (s) => cluster(s, fqdn('od'))?.outlierDetection?.baseEjectionTimeMs === 4000,
    );
    const ejectedAt = Date.now();
    const replies: Reply[] = [];
    for (let i = 0; i < 30; i++) replies.push(await send('http://od:8080/maybe'));
    assert.equal(replies.filter((r) => r.status === 500).length, 2, 'two 5xx, then no more traffic to it');
    assert.equal(
      replies.slice(10).every((r) => r.status === 200),
      true,
    );
    const status = await until('the ejection reported to the control plane', async () => {
      const s = (await (
        await fetch(`${cp.info.api}/api/v1/proxy-status`, { headers: adminHeaders(cp.info) })
      ).json()) as {
        proxies: { id: string; ejections?: { address: string; reason: string; until: string }[] }[];
      };
      return s.proxies.find((p) => p.id === 'client-0')?.ejections?.[0];
    });
    assert.equal(status.reason, '2 consecutive 5xx');
    // The operator's view: the CLI shows the ejected endpoint and the cluster's counters.
    const endpoints = await cli(['proxy-config', 'client-0', 'endpoints']);
    assert.match(endpoints, /EJECTED \(2 consecutive 5xx\) until \d{4}-\d\d-\d\dT/);
    const clusters = await cli(['proxy-config', 'client-0', 'clusters']);
    const row = clusters.split('\n').find((l) => l.startsWith(fqdn('od')));
    assert.match(row ?? '', /ROUND_ROBIN\s+\d+\s+0 \(0 URX\)\s+0\s+1\/1\s/, clusters);
    const until_ = Date.parse(status.until) - ejectedAt;
    assert.ok(until_ >= 4000 && until_ < 6000, `ejected for about baseEjectionTime (${until_}ms)`);

    bad.failing = false;
    const back = bad.hits.length;
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(status.until) - Date.now()) + 200));
    for (let i = 0; i < 9; i++) await send('http://od:8080/maybe');
    assert.ok(bad.hits.length > back, 'it gets traffic again after baseEjectionTime');
  });

  test('maxEjectionPercent caps ejections; below minHealthPercent every endpoint gets traffic (panic)', async () => {
    const [, b2, b3] = ['od-1', 'od-2', 'od-3'].map((n) => backends.get(n)!);
    b2.failing = true;
    b3.failing = true;
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od}
spec:
  host: od
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 34}
`,
      (s) => cluster(s, fqdn('od'))?.outlierDetection?.maxEjectionPercent === 34,
    );
    // Ejections from the earlier test have run out; each endpoint gets a fresh count.
    const capped: Reply[] = [];
    for (let i = 0; i < 30; i++) capped.push(await send('http://od:8080/maybe'));
    const late = countBy(capped.slice(15), (r) => String(r.headers['x-backend']));
    assert.equal(
      Object.keys(late).length,
      2,
      `one of the two failing endpoints stays in (${JSON.stringify(late)})`,
    );
    assert.ok(
      (await stat('envoy_cluster_outlier_detection_ejections_overflow', { cluster_name: fqdn('od') })) >= 1,
    );

    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od}
spec:
  host: od
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100, minHealthPercent: 50}
`,
      (s) => cluster(s, fqdn('od'))?.outlierDetection?.minHealthPercent === 50,
    );
    const panic: Reply[] = [];
    for (let i = 0; i < 30; i++) panic.push(await send('http://od:8080/maybe'));
    const spread = countBy(panic.slice(15), (r) => String(r.headers['x-backend']));
    assert.equal(
      Object.keys(spread).length,
      3,
      `with 1 of 3 healthy (< 50%) all three share (${JSON.stringify(spread)})`,
    );
    b2.failing = false;
    b3.failing = false;
  });

  test('load balancers: round robin, random and least request spread; consistent hash pins a key', async () => {
    const lbCluster = fqdn('lb');
    const spread = async (simple: string, n: number) => {
      await applyUntil(
        `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb}
spec:
  host: lb
  trafficPolicy: {loadBalancer: {simple: ${simple}}}
`,
        (s) => cluster(s, lbCluster)?.lb.type === simple,
      );
      const got: Reply[] = [];
      for (let i = 0; i < n; i++) got.push(await send('http://lb:8080/'));
      return countBy(got, (r) => String(r.headers['x-backend']));
    };
    const rr = await spread('ROUND_ROBIN', 30);
    assert.deepEqual(rr, { 'lb-1': 10, 'lb-2': 10, 'lb-3': 10 });
    for (const simple of ['RANDOM', 'LEAST_REQUEST']) {
      const r = await spread(simple, 300);
      // 100 expected each; σ ≈ 8.2; ±4σ.
      for (const n of ['lb-1', 'lb-2', 'lb-3'])
        assert.ok(r[n] > 67 && r[n] < 133, `${simple}: ${JSON.stringify(r)}`);
    }

    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb}
spec:
  host: lb
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
`,
      (s) => cluster(s, lbCluster)?.lb.type === 'RING_HASH',
    );
    const owners = new Map<string, Set<string>>();
    for (let i = 0; i < 60; i++) {
      const user = `user-${i % 12}`;
      const r = await send('http://lb:8080/', { headers: { 'x-user': user } });
      if (!owners.has(user)) owners.set(user, new Set());
      owners.get(user)!.add(String(r.headers['x-backend']));
    }
    for (const [user, set] of owners) assert.equal(set.size, 1, `${user} stays on one endpoint`);
    assert.ok(new Set([...owners.values()].map((s) => [...s][0])).size > 1, 'keys spread over endpoints');

    // Maglev on a query parameter; then the source IP, the same for every request of this client.
    const pinned = async (hash: string, type: string, key: string, url: (i: number) => string) => {
      await applyUntil(
        `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb}
spec:
  host: lb
  trafficPolicy:
    loadBalancer:
      consistentHash: ${hash}
`,
        (s) =>
          cluster(s, lbCluster)?.lb.type === type && JSON.stringify(cluster(s, lbCluster)?.lb).includes(key),
      );
      const seen = new Map<number, Set<string>>();
      for (let i = 0; i < 40; i++) {
        const r = await send(url(i % 8));
        if (!seen.has(i % 8)) seen.set(i % 8, new Set());
        seen.get(i % 8)!.add(String(r.headers['x-backend']));
      }
      return seen;
    };
    const byQuery = await pinned(
      '{httpQueryParameterName: user, maglev: {tableSize: 251}}',
      'MAGLEV',
      'queryParameter',
      (k) => `http://lb:8080/?user=u${k}`,
    );
    for (const [k, set] of byQuery) assert.equal(set.size, 1, `user u${k} stays on one endpoint`);
    const byIp = await pinned(
      '{useSourceIp: true}',
      'RING_HASH',
      'sourceIp',
      (k) => `http://lb:8080/?n=${k}`,
    );
    assert.equal(
      new Set([...byIp.values()].flatMap((s) => [...s])).size,
      1,
      'one client address, one endpoint',
    );

    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb}
spec:
  host: lb
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpCookie: {name: session, path: /, ttl: 60s}}
`,
      (s) => JSON.stringify(cluster(s, lbCluster)?.lb).includes('session'),
    );
    const first = await send('http://lb:8080/');
    const cookie = String(first.headers['set-cookie']);
    assert.match(cookie, /^session="[0-9a-f]+"; Path=\/; Max-Age=60; HttpOnly$/);
    const value = cookie.split(';')[0];
    for (let i = 0; i < 5; i++) {
      const again = await send('http://lb:8080/', { headers: { cookie: value } });
      assert.equal(again.headers['x-backend'], first.headers['x-backend'], 'the cookie pins the endpoint');
      assert.equal(again.headers['set-cookie'], undefined);
    }
  });

  test('warmup: an endpoint joining the cluster starts with a small share that grows over the window', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb}
spec:
  host: lb
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 3s, minimumPercent: 10}}
`,
      (s) => cluster(s, fqdn('lb'))?.warmup?.windowMs === 3000,
    );
    await backend('lb-4', 'lb', {});
    await until('the new endpoint healthy in the client snapshot', async () => {
      const eps = cluster(client.current()!, fqdn('lb'))?.endpoints ?? [];
      return eps.length === 4 && eps.every((e) => e.healthy);
    });
    const share = async () => {
      let n = 0;
      for (let i = 0; i < 200; i++) if ((await send('http://lb:8080/')).headers['x-backend'] === 'lb-4') n++;
      return n / 200;
    };
    const early = await share();
    assert.ok(early < 0.15, `a share of ${early} early in its window (a full one is 0.25)`);
    await new Promise((r) => setTimeout(r, 3000));
    const warm = await share();
    assert.ok(warm > 0.2, `a share of ${warm} once warm`);
  });

  test('locality failover: traffic stays in the zone, and moves when the zone empties', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: loc}
spec:
  host: loc
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
`,
      (s) => cluster(s, fqdn('loc'))?.locality !== undefined,
    );
    const local: Reply[] = [];
    for (let i = 0; i < 20; i++) local.push(await send('http://loc:8080/maybe'));
    assert.deepEqual(Object.keys(countBy(local, (r) => String(r.headers['x-backend']))).sort(), [
      'loc-a',
      'loc-a2',
    ]);
    const zoneA = [backends.get('loc-a')!, backends.get('loc-a2')!];
    for (const b of zoneA) b.failing = true;
    const moved: Reply[] = [];
    for (let i = 0; i < 30; i++) moved.push(await send('http://loc:8080/maybe'));
    assert.deepEqual(
      countBy(moved.slice(15), (r) => String(r.headers['x-backend'])),
      { 'loc-b': 15 },
      'once zone a is ejected, zone b takes the traffic',
    );
    for (const b of zoneA) b.failing = false;
  });

  test('locality: distribute weights zones; retryRemoteLocalities sends a retry to another zone', async () => {
    // No outlier detection here: the ejections of the test before are over.
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: loc}
spec:
  host: loc
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute: [{from: "r1/a/*", to: {"r1/a/*": 80, "r1/b/*": 20}}]
`,
      (s) => cluster(s, fqdn('loc'))?.locality?.distribute !== undefined,
    );
    const spread: Reply[] = [];
    for (let i = 0; i < 400; i++) spread.push(await send('http://loc:8080/maybe'));
    const inB = spread.filter((r) => r.headers['x-backend'] === 'loc-b').length;
    // Binomial(400, 0.2): σ = 8; ±4σ.
    assert.ok(inB > 48 && inB < 112, `zone b got ${inB} of 400 for a weight of 20`);

    const retrying = (remote: boolean) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: loc}
spec:
  hosts: [loc]
  http:
  - retries: {attempts: 1, retryOn: 5xx, retryRemoteLocalities: ${remote}}
    route: [{destination: {host: loc}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: loc}
spec:
  host: loc
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1000}
`;
    const a = backends.get('loc-a')!;
    a.failing = true;
    const retriedTo = async (remote: boolean) => {
      await applyUntil(retrying(remote), (s) =>
        JSON.stringify(s.routeTables).includes(`"remoteLocalities":${remote}`),
      );
      const to = new Set<string>();
      for (let i = 0; i < 30; i++) {
        const before = a.hits.length;
        const r = await send('http://loc:8080/maybe');
        // A request whose first try failed at loc-a: where did its retry go?
        if (a.hits.length > before && r.status === 200) to.add(String(r.headers['x-backend']));
      }
      return [...to].sort();
    };
    assert.deepEqual(await retriedTo(false), ['loc-a2'], 'without it, a retry stays in zone a');
    assert.deepEqual(await retriedTo(true), ['loc-b'], 'with it, the retry leaves the zone tried');
    a.failing = false;
  });

  test('mirroring: v2 gets a -shadow copy; the response and its latency are v1’s alone', async () => {
    const v2 = backends.get('web-v2')!;
    v2.delayMs = 1000;
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - route: [{destination: {host: web, subset: v1}, weight: 100}]
    mirror: {host: web, subset: v2}
    mirrorPercentage: {value: 100.0}
`,
      (s) => JSON.stringify(s.routeTables).includes('"mirrors"'),
    );
    const seen = v2.hits.length;
    const r = await send('http://web:8080/mirrored');
    assert.equal(r.headers['x-backend'], 'web-v1');
    assert.ok(r.ms < 500, `the slow mirror does not slow the response (${r.ms}ms)`);
    await until('the copy to reach v2', async () => v2.hits.length > seen);
    const copy = v2.hits.at(-1)!;
    assert.equal(copy.path, '/mirrored');
    assert.equal(copy.host, 'web-shadow:8080');
    v2.delayMs = 0;
  });

  test('CORS: preflights answered by the proxy as Envoy does; unmatched ones forwarded', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://app.example.com"}, {regex: "https://.*\\\\.trusted\\\\.io"}]
      allowMethods: [GET, POST]
      allowHeaders: [authorization, content-type]
      exposeHeaders: [x-backend]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: web, subset: v1}}]
`,
      (s) => JSON.stringify(s.routeTables).includes('"cors"'),
    );
    const v1 = backends.get('web-v1')!;
    const seen = v1.hits.length;
    const pre = await send('http://web:8080/api', {
      method: 'OPTIONS',
      headers: { origin: 'https://x.trusted.io', 'access-control-request-method': 'POST' },
    });
    assert.equal(pre.status, 200);
    assert.equal(pre.headers['access-control-allow-origin'], 'https://x.trusted.io');
    assert.equal(pre.headers['access-control-allow-methods'], 'GET,POST');
    assert.equal(pre.headers['access-control-allow-headers'], 'authorization,content-type');
    assert.equal(pre.headers['access-control-max-age'], '86400');
    assert.equal(pre.headers['access-control-allow-credentials'], 'true');
    assert.equal(v1.hits.length, seen, 'the preflight never reached the app');

    const other = await send('http://web:8080/api', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    assert.equal(other.headers['x-backend'], 'web-v1', 'an unmatched preflight goes upstream (FORWARD)');
    assert.equal(v1.hits.filter((h) => h.method === 'OPTIONS').length, 1);

    const simple = await send('http://web:8080/api', { headers: { origin: 'https://app.example.com' } });
    assert.equal(simple.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.equal(simple.headers['access-control-expose-headers'], 'x-backend');
  });

  test('rewrites and header edits at the route and destination level', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /old}}]
    rewrite: {uri: /echo/new, authority: web.internal}
    headers:
      request: {set: {x-route: r}, add: {x-multi: two}, remove: [x-secret]}
      response: {set: {x-served-by: trellis}, remove: [x-remove-me]}
    route:
    - destination: {host: web, subset: v1}
      headers: {request: {set: {x-dest: v1}}, response: {add: {x-dest-response: v1}}}
  - match: [{uri: {prefix: /moved}}]
    redirect: {prefixRewrite: /echo}
  - match: [{uri: {regex: "/re/.*"}}]
    rewrite: {uriRegexRewrite: {match: "^/re/([a-z]+)/(.*)$", rewrite: "/echo/\\\\2/\\\\1"}}
    route: [{destination: {host: web, subset: v1}}]
`,
      (s) =>
        JSON.stringify(s.routeTables).includes('uriRegexRewrite') ||
        JSON.stringify(s.routeTables).includes('"regex":{"match"'),
    );
    const r = await send('http://web:8080/old/path?q=1', { headers: { 'x-multi': 'one', 'x-secret': 's' } });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body) as { path: string; host: string; headers: Record<string, string> };
    assert.equal(seen.path, '/echo/new/path?q=1', 'the matched prefix is replaced, the query kept');
    assert.equal(seen.host, 'web.internal');
    assert.equal(seen.headers['x-route'], 'r');
    assert.equal(seen.headers['x-dest'], 'v1');
    assert.equal(seen.headers['x-multi'], 'one,two');
    assert.equal(seen.headers['x-secret'], undefined);
    assert.equal(r.headers['x-served-by'], 'trellis');
    assert.equal(r.headers['x-dest-response'], 'v1');
    assert.equal(r.headers['x-remove-me'], undefined);

    const moved = await send('http://web:8080/moved/here?x=1');
    assert.equal(moved.status, 301);
    assert.equal(moved.headers.location, 'http://web:8080/echo/here?x=1', 'redirect.prefixRewrite');

    const re = await send('http://web:8080/re/abc/def');
    assert.equal((JSON.parse(re.body) as { path: string }).path, '/echo/def/abc');
  });

  test('delegation: the root rule hands /api to a delegate whose matches narrow it', async () => {
    await applyUntil(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /api}}]
    delegate: {name: web-api}
  - route: [{destination: {host: web, subset: v3}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-api}
spec:
  http:
  - match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: web, subset: v2}}]
  - match: [{uri: {prefix: /other}}]
    route: [{destination: {host: web, subset: v2}}]
  - route: [{destination: {host: web, subset: v1}}]
`,
      (s) => JSON.stringify(s.routeTables).includes('delegated by'),
    );
    const v2 = await send('http://web:8080/api/v2/x');
    assert.equal(v2.headers['x-backend'], 'web-v2', JSON.stringify(v2));
    const v1 = await send('http://web:8080/api/v1/x');
    assert.equal(v1.headers['x-backend'], 'web-v1', JSON.stringify(v1));
    assert.equal(
      (await send('http://web:8080/other')).headers['x-backend'],
      'web-v3',
      "a delegate match outside the root's prefix is dropped",
    );
  });
});
