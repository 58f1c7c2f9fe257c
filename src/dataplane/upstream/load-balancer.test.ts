import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LoadBalancerPolicy } from '../../compile/snapshot.ts';
import { type Balanced, LeastRequest, LOAD_BALANCERS, loadBalancer, RandomPick } from './load-balancer.ts';
import { ClusterState, EndpointState } from './state.ts';

const endpoints = (n: number): Balanced[] =>
  Array.from({ length: n }, (_, i) => ({ state: new EndpointState(`c|10.0.0.${i}:80`) }));

/** A seeded generator, so statistical checks are the same on every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

// The conformance suite: every load balancer the proxy offers passes it, whatever its policy.
for (const type of Object.keys(LOAD_BALANCERS) as LoadBalancerPolicy['type'][]) {
  const make = (eps: readonly Balanced[], cluster = new ClusterState('c')) =>
    loadBalancer({ type } as LoadBalancerPolicy, eps, cluster);

  describe(`load balancer conformance: ${type}`, () => {
    test('no endpoint to send to: undefined, every time', () => {
      const lb = make([]);
      for (let i = 0; i < 5; i++) assert.equal(lb.pick(), undefined);
    });

    test('one endpoint: always that one', () => {
      const eps = endpoints(1);
      const lb = make(eps);
      for (let i = 0; i < 20; i++) assert.equal(lb.pick(), eps[0]);
    });

    test('picks only among the endpoints it was given, and reaches every one of them', () => {
      const eps = endpoints(5);
      const lb = make(eps);
      const counts = new Map<Balanced, number>();
      for (let i = 0; i < 5000; i++) {
        const e = lb.pick();
        assert.ok(e && eps.includes(e));
        counts.set(e, (counts.get(e) ?? 0) + 1);
      }
      assert.equal(counts.size, 5);
      // With nothing in flight, each gets its share: 1000 ± 20%.
      for (const n of counts.values()) assert.ok(n > 800 && n < 1200, `share ${n} of 5000`);
    });

    test('requests in flight never make it pick outside the set or none at all', () => {
      const eps = endpoints(3);
      eps[0].state.active = 100;
      eps[1].state.active = 5;
      const lb = make(eps);
      for (let i = 0; i < 100; i++) assert.ok(eps.includes(lb.pick()!));
    });
  });
}

describe('load balancer policies', () => {
  test('ROUND_ROBIN keeps its position in the cluster state: a rebuilt balancer goes on where the last stopped', () => {
    const eps = endpoints(3);
    const cluster = new ClusterState('c');
    const first = loadBalancer({ type: 'ROUND_ROBIN' }, eps, cluster);
    assert.equal(first.pick(), eps[0]);
    assert.equal(first.pick(), eps[1]);
    const rebuilt = loadBalancer({ type: 'ROUND_ROBIN' }, eps, cluster);
    assert.equal(rebuilt.pick(), eps[2]);
    assert.equal(rebuilt.pick(), eps[0]);
  });

  test('LEAST_REQUEST: of two choices, the one with fewer requests in flight', () => {
    const eps = endpoints(2);
    eps[0].state.active = 3;
    const lb = new LeastRequest(eps, prng(1));
    for (let i = 0; i < 50; i++) assert.equal(lb.pick(), eps[1]);
    // Two distinct endpoints are compared, so the one busier than all others is never picked.
    const many = endpoints(10);
    many[4].state.active = 1;
    const lr = new LeastRequest(many, prng(7));
    for (let i = 0; i < 2000; i++) assert.notEqual(lr.pick(), many[4]);
  });

  test('RANDOM follows its random source', () => {
    const eps = endpoints(4);
    const values = [0.1, 0.3, 0.6, 0.9];
    let i = 0;
    const lb = new RandomPick(eps, () => values[i++ % 4]);
    assert.deepEqual([lb.pick(), lb.pick(), lb.pick(), lb.pick()], eps);
  });

  test('a policy the proxy does not have is refused', () => {
    assert.throws(
      () => loadBalancer({ type: 'MAGLEV', hash: { header: 'x' } }, endpoints(1), new ClusterState('c')),
      /load balancer MAGLEV is not supported by this proxy/,
    );
  });
});
