import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Cluster } from '../../compile/snapshot.ts';
import { ClusterRuntime } from './cluster.ts';
import { type Balanced, loadBalancer } from './load-balancer.ts';
import { ClusterState, EndpointState, UpstreamState } from './state.ts';
import { unequalWeights, WeightedLeastRequest, WeightedRoundRobin, weightOf } from './weighted.ts';

const weighted = (...weights: (number | undefined)[]): Balanced[] =>
  weights.map((weight, i) => ({
    state: new EndpointState(`c|10.0.0.${i}:80`),
    ...(weight !== undefined ? { weight } : {}),
  }));

function shares(pick: () => Balanced | undefined, eps: readonly Balanced[], n: number): number[] {
  const counts = new Map<Balanced, number>();
  for (let i = 0; i < n; i++) {
    const e = pick()!;
    counts.set(e, (counts.get(e) ?? 0) + 1);
  }
  return eps.map((e) => counts.get(e) ?? 0);
}

describe('endpoint weights', () => {
  test('unset and 0 count as 1; only differing weights change the balancing', () => {
    assert.deepEqual(weighted(undefined, 0, 3).map(weightOf), [1, 1, 3]);
    assert.equal(unequalWeights(weighted(undefined, 1, 0)), false);
    assert.equal(unequalWeights(weighted(2, 2)), false);
    assert.equal(unequalWeights(weighted(1, 2)), true);
    assert.equal(unequalWeights([]), false);
  });

  test('weighted round robin: exact shares over every full cycle, spread out', () => {
    const eps = weighted(1, 3, 6);
    const lb = new WeightedRoundRobin(eps, () => 0);
    // Each window of 10 picks (the sum of the weights) gives 1, 3 and 6.
    for (let cycle = 0; cycle < 5; cycle++)
      assert.deepEqual(
        shares(() => lb.pick(), eps, 10),
        [1, 3, 6],
      );
    // The heaviest (6 of 10) never takes more than three picks in a row: interleaved, not in bursts.
    let run = 0;
    let longest = 0;
    for (let i = 0; i < 100; i++) {
      run = lb.pick() === eps[2] ? run + 1 : 0;
      longest = Math.max(longest, run);
    }
    assert.ok(longest <= 3, `longest run ${longest}`);
  });

  test('weighted least request: shares follow weights when idle, and busy endpoints lose theirs', () => {
    const eps = weighted(1, 4);
    const idle = new WeightedLeastRequest(eps);
    assert.deepEqual(
      shares(() => idle.pick(), eps, 1000),
      [200, 800],
    );
    // The heavy endpoint holds 9 requests: its weight 4 counts as 4/10, the light one's 1 as 1/1.
    eps[1].state.active = 9;
    const busy = new WeightedLeastRequest(eps);
    const [light, heavy] = shares(() => busy.pick(), eps, 1400);
    assert.equal(light + heavy, 1400);
    assert.ok(light > 2 * heavy, `light ${light}, heavy ${heavy}`);
    assert.ok(heavy > 0, 'a busy endpoint is picked less, never not at all');
  });

  test('the policies pick the weighted balancers only when weights differ; RANDOM ignores them', () => {
    const cluster = new ClusterState('c');
    assert.ok(loadBalancer({ type: 'ROUND_ROBIN' }, weighted(1, 2), cluster) instanceof WeightedRoundRobin);
    assert.ok(
      !(loadBalancer({ type: 'ROUND_ROBIN' }, weighted(2, 2), cluster) instanceof WeightedRoundRobin),
    );
    assert.ok(
      loadBalancer({ type: 'LEAST_REQUEST' }, weighted(1, 2), cluster) instanceof WeightedLeastRequest,
    );
    const eps = weighted(1, 9);
    const r = loadBalancer({ type: 'RANDOM' }, eps, cluster);
    const [a, b] = shares(() => r.pick(), eps, 4000);
    assert.ok(Math.abs(a - b) < 400, `random ignores weights: ${a} vs ${b}`);
  });

  test("a cluster's endpoints carry their snapshot weights to its balancer", () => {
    const cluster: Cluster = {
      name: 'outbound|80||api.example.com',
      direction: 'outbound',
      port: 80,
      lb: { type: 'ROUND_ROBIN' },
      tls: { mode: 'DISABLE' },
      endpoints: [
        { address: '192.0.2.1', port: 80, healthy: true },
        { address: '192.0.2.2', port: 80, healthy: true, weight: 4 },
        { address: '192.0.2.3', port: 80, healthy: false, weight: 100 },
      ],
    };
    const rt = new ClusterRuntime(cluster, new UpstreamState());
    const counts = new Map<string, number>();
    for (let i = 0; i < 500; i++) {
      const a = rt.pick()!.endpoint.address;
      counts.set(a, (counts.get(a) ?? 0) + 1);
    }
    // The unhealthy endpoint's weight counts for nothing.
    assert.deepEqual(Object.fromEntries(counts), { '192.0.2.1': 100, '192.0.2.2': 400 });
  });
});
