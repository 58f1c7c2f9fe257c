// The retry layer over a scripted upstream: which answers and failures each retryOn condition
// retries, how tries run out (URX), the retry breaker, and request bodies replayed or not.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import type { RetryPolicy } from '../../compile/snapshot.ts';
import {
  type Dispatch,
  type FailureKind,
  UpstreamFailure,
  type UpstreamRequest,
  upstreamRequest,
} from './dispatch.ts';
import { backoff, RETRY_BUFFER_BYTES, RetryConditions, withRetries } from './retry.ts';
import { ClusterState } from './state.ts';

type Outcome = { status: number; headers?: IncomingHttpHeaders } | { fail: FailureKind; refused?: boolean };

/** An upstream answering each try with the next outcome; it reads the body each try is given. */
function scripted(outcomes: Outcome[]): { dispatch: Dispatch; bodies: string[] } {
  const bodies: string[] = [];
  let i = 0;
  const dispatch: Dispatch = (req, handler) => {
    const o = outcomes[Math.min(i++, outcomes.length - 1)];
    let aborted = false;
    const answer = () => {
      if (aborted) return;
      if ('fail' in o) {
        const f = new UpstreamFailure(o.fail, `scripted ${o.fail}`);
        f.refused = o.refused === true;
        handler.onError(f);
        return;
      }
      handler.onHead(o.status, o.headers ?? {});
      if (!aborted) handler.onEnd();
    };
    if (req.body) {
      req.bodyStarted = true;
      const chunks: Buffer[] = [];
      req.body.on('data', (c: Buffer) => chunks.push(c));
      req.body.once('end', () => {
        bodies.push(Buffer.concat(chunks).toString());
        answer();
      });
    } else setImmediate(answer);
    return {
      resume() {},
      abort() {
        aborted = true;
      },
    };
  };
  return { dispatch, bodies };
}

function policy(over: Partial<RetryPolicy>): RetryPolicy {
  return {
    attempts: 2,
    on: [],
    statusCodes: [],
    backoffMs: 1,
    ignorePreviousHosts: true,
    origin: 'test',
    ...over,
  };
}

interface Result {
  status?: number;
  failure?: UpstreamFailure;
  req: UpstreamRequest;
}

function run(
  p: RetryPolicy,
  outcomes: Outcome[],
  opts: { body?: Readable; state?: ClusterState; maxRetries?: number; headers?: Record<string, string> } = {},
): Promise<Result & { bodies: string[] }> {
  const { dispatch, bodies } = scripted(outcomes);
  const state = opts.state ?? new ClusterState('c');
  const layer = withRetries({
    policy: p,
    conditions: new RetryConditions(p),
    state,
    maxRetries: opts.maxRetries,
    budget: undefined,
  });
  const req = upstreamRequest('HTTP/1.1', 'POST', '/', 'svc', { ...opts.headers }, opts.body);
  return new Promise((resolve) => {
    layer(dispatch)(req, {
      onHead: (status) => resolve({ status, req, bodies }),
      onData: () => true,
      onEnd() {},
      onError: (failure) => resolve({ failure, req, bodies }),
    });
  });
}

describe('retryOn conditions', () => {
  // [conditions, outcome, retried?]
  const cases: [string, Outcome, boolean][] = [
    ['5xx', { status: 500 }, true],
    ['5xx', { status: 404 }, false],
    ['5xx', { fail: 'connect' }, true],
    ['5xx', { fail: 'reset' }, true],
    ['5xx', { fail: 'timeout' }, true],
    ['gateway-error', { status: 502 }, true],
    ['gateway-error', { status: 500 }, false],
    ['gateway-error', { fail: 'connect' }, true],
    ['reset', { fail: 'reset' }, true],
    ['reset', { status: 503 }, false],
    ['connect-failure', { fail: 'connect' }, true],
    ['connect-failure', { fail: 'reset' }, false],
    ['connect-failure', { fail: 'timeout' }, false],
    ['reset-before-request', { fail: 'connect' }, true],
    ['reset-before-request', { fail: 'reset' }, false],
    ['refused-stream', { fail: 'reset', refused: true }, true],
    ['refused-stream', { fail: 'reset' }, false],
    ['retriable-4xx', { status: 409 }, true],
    ['retriable-4xx', { status: 400 }, false],
    ['envoy-ratelimited', { status: 429, headers: { 'x-envoy-ratelimited': 'true' } }, true],
    ['envoy-ratelimited', { status: 429 }, false],
    ['unavailable', { status: 200, headers: { 'grpc-status': '14' } }, true],
    ['cancelled', { status: 200, headers: { 'grpc-status': '1' } }, true],
    ['deadline-exceeded', { status: 200, headers: { 'grpc-status': '4' } }, true],
    ['internal', { status: 200, headers: { 'grpc-status': '13' } }, true],
    ['resource-exhausted', { status: 200, headers: { 'grpc-status': '8' } }, true],
    ['unavailable', { status: 200, headers: { 'grpc-status': '13' } }, false],
    ['5xx', { fail: 'overflow' }, false],
    ['5xx', { fail: 'no-healthy-upstream' }, false],
  ];
  for (const [on, outcome, retried] of cases) {
    test(`${on}: ${JSON.stringify(outcome)} ${retried ? 'is' : 'is not'} retried`, async () => {
      const r = await run(policy({ on: [on], attempts: 1 }), [outcome, { status: 200 }]);
      assert.equal(r.req.attempts, retried ? 2 : 1);
    });
  }

  test('retriable-status-codes retries the listed statuses only', async () => {
    const p = policy({ on: ['retriable-status-codes'], statusCodes: [418], attempts: 1 });
    assert.equal((await run(p, [{ status: 418 }, { status: 200 }])).status, 200);
    assert.equal((await run(p, [{ status: 503 }, { status: 200 }])).status, 503);
  });

  test('retriable-headers retries a response with a header the request named', async () => {
    const p = policy({ on: ['retriable-headers'], attempts: 1 });
    const headers = { 'x-envoy-retriable-header-names': 'X-Retry-Me' };
    assert.equal(
      (await run(p, [{ status: 200, headers: { 'x-retry-me': '1' } }, { status: 201 }], { headers })).status,
      201,
    );
  });
});

describe('retries', () => {
  test('tries run out: the last answer goes downstream flagged, the counters say so', async () => {
    const state = new ClusterState('c');
    const r = await run(policy({ on: ['5xx'], attempts: 2 }), [{ status: 503 }], { state });
    assert.equal(r.status, 503);
    assert.equal(r.req.attempts, 3);
    assert.equal(r.req.retriesExhausted, true);
    assert.equal(state.stats.upstream_rq_retry, 2);
    assert.equal(state.stats.upstream_rq_retry_limit_exceeded, 1);
    assert.equal(state.activeRetries, 0, 'the retry breaker is released');
  });

  test('a failure that runs out of tries carries URX with its own flag', async () => {
    const r = await run(policy({ on: ['connect-failure'], attempts: 1 }), [{ fail: 'connect' }]);
    assert.equal(r.failure?.retriesExhausted, true);
  });

  test('a retry that succeeds is counted as such', async () => {
    const state = new ClusterState('c');
    const r = await run(policy({ on: ['5xx'], attempts: 3 }), [{ status: 500 }, { status: 200 }], { state });
    assert.equal(r.status, 200);
    assert.equal(state.stats.upstream_rq_retry_success, 1);
    assert.equal(r.req.retriesExhausted, false);
  });

  test('maxRetries: with the cluster’s retries in flight at the limit, no retry is made', async () => {
    const state = new ClusterState('c');
    state.activeRetries = 1;
    const r = await run(policy({ on: ['5xx'] }), [{ status: 503 }, { status: 200 }], {
      state,
      maxRetries: 1,
    });
    assert.equal(r.status, 503);
    assert.equal(state.stats.upstream_rq_retry_overflow, 1);
  });

  test('the request body is sent again whole on each try', async () => {
    const body = Readable.from([Buffer.from('hello '), Buffer.from('world')]);
    const r = await run(policy({ on: ['5xx'] }), [{ status: 503 }, { status: 200 }], { body });
    assert.equal(r.status, 200);
    assert.deepEqual(r.bodies, ['hello world', 'hello world']);
  });

  test('a body larger than the replay buffer is not retried', async () => {
    const big = Buffer.alloc(RETRY_BUFFER_BYTES + 1, 'x');
    const r = await run(policy({ on: ['5xx'] }), [{ status: 503 }, { status: 200 }], {
      body: Readable.from([big]),
    });
    assert.equal(r.status, 503);
    assert.equal(r.req.attempts, 1);
  });

  test('backoff: a random wait up to (2^n - 1) × base, the ceiling capped at 10 × base', () => {
    const max = () => 0.999999;
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => backoff(25, n, max)),
      [24, 74, 174, 249, 249],
    );
    assert.equal(
      backoff(25, 3, () => 0),
      0,
    );
  });
});
