// Per-request cost of the resilience layers on the client sidecar's upstream stack: Istio's default
// retry policy and outlier detection against the same stack without them (`retries: {attempts: 0}`,
// no outlierDetection). The stacks are the ones the proxy builds (balance → retries → ...) over a
// cluster of three endpoints, each try answered at once by a transport that does no I/O, so what is
// measured is the layers alone. Interleaved rounds; reported as ns per request and as a share of
// the sidecar's measured CPU per request (bench/README.md).
//   node bench/upstream-layers.ts [--requests N] [--rounds N]
import { parseArgs } from 'node:util';
import { DEFAULT_RETRY } from '../src/compile/route-policy.ts';
import type { Cluster } from '../src/compile/snapshot.ts';
import { outlierDetection } from '../src/compile/traffic-policy.ts';
import { balance, type Transports } from '../src/dataplane/upstream/balance.ts';
import { ClusterRuntime } from '../src/dataplane/upstream/cluster.ts';
import { type Dispatch, type DispatchHandler, upstreamRequest } from '../src/dataplane/upstream/dispatch.ts';
import { RetryConditions, withRetries } from '../src/dataplane/upstream/retry.ts';
import { UpstreamState } from '../src/dataplane/upstream/state.ts';

const { values } = parseArgs({ options: { requests: { type: 'string' }, rounds: { type: 'string' } } });
const REQUESTS = Number(values.requests ?? 1_000_000);
const ROUNDS = Number(values.rounds ?? 5);

const body = Buffer.alloc(1024);
/** A try that answers 200 with 1 KB at once. */
const answer: Dispatch = (_req, h) => {
  h.onHead(200, { 'content-length': '1024' });
  h.onData(body);
  h.onEnd();
  return { resume() {}, abort() {} };
};
const transports: Transports = { 'HTTP/1.1': answer, 'HTTP/2': answer };

function cluster(name: string, outlier: boolean): Cluster {
  return {
    name,
    direction: 'outbound',
    service: 'upstream.default.svc.cluster.local',
    port: 80,
    lb: { type: 'LEAST_REQUEST' },
    ...(outlier ? { outlierDetection: outlierDetection({ consecutive5xxErrors: 5 })!, locality: {} } : {}),
    tls: { mode: 'ISTIO_MUTUAL', sni: 'x', identities: [] },
    endpoints: [1, 2, 3].map((i) => ({ address: `10.0.0.${i}`, port: 15006, healthy: true })),
  };
}

function stack(resilient: boolean): Dispatch {
  const state = new UpstreamState();
  const c = new ClusterRuntime(cluster(resilient ? 'resilient' : 'plain', resilient), state);
  const d = balance(
    c,
    'bench',
    c.endpoints.map(() => transports),
  );
  if (!resilient) return d;
  return withRetries({
    policy: DEFAULT_RETRY,
    conditions: new RetryConditions(DEFAULT_RETRY),
    state: c.state,
    maxRetries: undefined,
    budget: undefined,
  })(d);
}

const handler: DispatchHandler = { onHead() {}, onData: () => true, onEnd() {}, onError() {} };

function nsPerRequest(d: Dispatch): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < REQUESTS; i++) {
    d(upstreamRequest('HTTP/1.1', 'GET', '/', 'upstream', {}, undefined), handler);
  }
  return Number(process.hrtime.bigint() - start) / REQUESTS;
}

const plain = stack(false);
const resilient = stack(true);
nsPerRequest(plain);
nsPerRequest(resilient);
const results: { plain: number; resilient: number }[] = [];
for (let r = 0; r < ROUNDS; r++)
  results.push({ plain: nsPerRequest(plain), resilient: nsPerRequest(resilient) });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p = median(results.map((x) => x.plain));
const q = median(results.map((x) => x.resilient));
console.log(`upstream stack, ns per request (median of ${ROUNDS} interleaved rounds of ${REQUESTS}):`);
console.log(`  plain (no retries, no outlier detection): ${p.toFixed(0)}`);
console.log(`  resilient (default retry policy, outlier detection): ${q.toFixed(0)}`);
console.log(`  added: ${(q - p).toFixed(0)} ns per request`);
