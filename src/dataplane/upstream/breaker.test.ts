// Circuit breaking over a held upstream: requests in flight, connections, the bounded pending queue.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { circuitBreaker } from './breaker.ts';
import type { Dispatch, DispatchHandler, UpstreamFailure } from './dispatch.ts';
import { upstreamRequest } from './dispatch.ts';
import { ClusterState } from './state.ts';

/** An upstream that answers only when told to; it counts requests in flight as the balancer does. */
function held(state: ClusterState) {
  const waiting: DispatchHandler[] = [];
  const dispatch: Dispatch = (_req, h) => {
    state.active++;
    waiting.push(h);
    return { resume() {}, abort() {} };
  };
  const finish = () => {
    const h = waiting.shift()!;
    state.active--;
    h.onHead(200, {});
    h.onEnd();
  };
  return { dispatch, waiting, finish };
}

function send(d: Dispatch, protocol: 'HTTP/1.1' | 'HTTP/2' = 'HTTP/1.1') {
  const out: { status?: number; failure?: UpstreamFailure } = {};
  const call = d(upstreamRequest(protocol, 'GET', '/', 'svc', {}, undefined), {
    onHead: (s) => {
      out.status = s;
    },
    onData: () => true,
    onEnd() {},
    onError: (f) => {
      out.failure = f;
    },
  });
  return { out, call };
}

describe('circuit breaking', () => {
  test('no limits: no layer at all', () => {
    assert.equal(circuitBreaker(undefined, new ClusterState('c')), undefined);
    assert.equal(circuitBreaker({ idleTimeoutMs: 5 }, new ClusterState('c')), undefined);
  });

  test('maxConnections 1, http1MaxPendingRequests 1: one in flight, one waiting, the third overflows (UO)', () => {
    const state = new ClusterState('c');
    const up = held(state);
    const d = circuitBreaker({ maxConnections: 1, maxPendingRequests: 1 }, state)!(up.dispatch);
    const a = send(d);
    const b = send(d);
    const c = send(d);
    assert.equal(up.waiting.length, 1, 'only one request holds the connection');
    assert.equal(c.out.failure?.kind, 'overflow');
    assert.equal(state.pending, 1);
    assert.equal(state.stats.upstream_rq_pending_overflow, 1);
    up.finish();
    assert.equal(a.out.status, 200);
    assert.equal(up.waiting.length, 1, 'the waiting request took the free connection');
    up.finish();
    assert.equal(b.out.status, 200);
    assert.equal(state.active, 0);
    assert.equal(state.pending, 0);
  });

  test('a waiting request the client abandons leaves the queue', () => {
    const state = new ClusterState('c');
    const up = held(state);
    const d = circuitBreaker({ maxConnections: 1, maxPendingRequests: 5 }, state)!(up.dispatch);
    send(d);
    const b = send(d);
    b.call.abort();
    assert.equal(state.pending, 0);
    up.finish();
    assert.equal(up.waiting.length, 0, 'nothing was started for the abandoned request');
  });

  test('http2MaxRequests: requests in flight over the limit overflow at once, whatever the protocol', () => {
    const state = new ClusterState('c');
    const up = held(state);
    const d = circuitBreaker({ maxRequests: 2 }, state)!(up.dispatch);
    send(d, 'HTTP/2');
    send(d, 'HTTP/2');
    const third = send(d, 'HTTP/2');
    assert.equal(third.out.failure?.kind, 'overflow');
    assert.match(third.out.failure?.message ?? '', /max requests \(2\) of c overflowed/);
  });
});
