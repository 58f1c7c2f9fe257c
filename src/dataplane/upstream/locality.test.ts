import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RandomPick } from './load-balancer.ts';
import {
  type Locality,
  LocalityBalancer,
  type LocalitySetting,
  type Localized,
  localityMatches,
  localityOf,
  localityString,
  priorityLevels,
  priorityLoad,
  type Self,
} from './locality.ts';
import { EndpointState } from './state.ts';

/** A seeded generator, so statistical checks are the same on every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Ep extends Localized {
  up: boolean;
}

const at = (l: string): Locality => {
  const [region = '', zone = '', subzone = ''] = l.split('/');
  return { region, zone, subzone };
};

let serial = 0;
/** `count` endpoints in locality `l` (`region/zone/subzone`). */
const eps = (l: string, count: number, labels?: Record<string, string>): Ep[] =>
  Array.from({ length: count }, () => ({
    state: new EndpointState(`c|10.0.0.${serial++}:80`),
    locality: at(l),
    labels,
    up: true,
  }));

const self = (l: string, labels?: Record<string, string>): Self => ({ locality: at(l), labels });

const names = (levels: readonly (readonly { endpoints: readonly Ep[] }[])[]) =>
  levels.map((level) => [
    ...new Set(level.flatMap((g) => g.endpoints.map((e) => localityString(e.locality)))),
  ]);

function balancer(me: Self, endpoints: Ep[], setting: LocalitySetting = {}, panicThreshold?: number) {
  const random = prng(7);
  return new LocalityBalancer<Ep>({
    self: me,
    endpoints,
    setting,
    healthy: (e) => e.up,
    inner: (list) => new RandomPick(list, random),
    panicThreshold,
    random,
  });
}

/** Share of 10k picks per locality string. */
function spread(lb: LocalityBalancer<Ep>, picks = 10_000): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < picks; i++) {
    const e = lb.pick();
    const name = e ? localityString(e.locality) : 'none';
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  for (const [k, n] of counts) counts.set(k, n / picks);
  return counts;
}

const near = (actual: number | undefined, expected: number, tolerance = 0.02) =>
  assert.ok(
    Math.abs((actual ?? 0) - expected) <= tolerance,
    `${actual} not within ${tolerance} of ${expected}`,
  );

describe('locality of a workload', () => {
  test('from the topology labels, empty where one is absent', () => {
    const l = localityOf({
      'topology.kubernetes.io/region': 'us-east',
      'topology.kubernetes.io/zone': 'us-east-1a',
      'topology.istio.io/subzone': 'rack7',
    });
    assert.deepEqual(l, { region: 'us-east', zone: 'us-east-1a', subzone: 'rack7' });
    assert.equal(localityString(l), 'us-east/us-east-1a/rack7');
    assert.deepEqual(localityOf({ 'topology.kubernetes.io/region': 'eu' }), {
      region: 'eu',
      zone: '',
      subzone: '',
    });
    assert.equal(localityString(localityOf()), '//');
  });

  test('matches a pattern part by part, `*` or a missing part matching any', () => {
    const l = at('us/us-1/a');
    for (const p of ['us', 'us/*', 'us/us-1', 'us/us-1/*', 'us/us-1/a', '*', '*/us-1/a'])
      assert.ok(localityMatches(l, p), p);
    for (const p of ['eu', 'us/us-2', 'us/us-1/b', 'us/*/b']) assert.ok(!localityMatches(l, p), p);
  });
});

describe('priorityLevels (Istio)', () => {
  const all = [
    ...eps('r1/z1/s1', 1),
    ...eps('r1/z1/s2', 1),
    ...eps('r1/z2/s1', 1),
    ...eps('r2/z1/s1', 1),
    ...eps('r3/z1/s1', 1),
  ];

  test('by proximity: same subzone, same zone, same region, the rest', () => {
    assert.deepEqual(names(priorityLevels(self('r1/z1/s1'), all, {})), [
      ['r1/z1/s1'],
      ['r1/z1/s2'],
      ['r1/z2/s1'],
      ['r2/z1/s1', 'r3/z1/s1'],
    ]);
  });

  test('levels that would be empty are left out', () => {
    assert.deepEqual(names(priorityLevels(self('r2/z9/s9'), all, {})), [
      ['r2/z1/s1'],
      ['r1/z1/s1', 'r1/z1/s2', 'r1/z2/s1', 'r3/z1/s1'],
    ]);
  });

  test('failover: the `to` region comes right after the proxy region, the others after it', () => {
    const setting = { failover: [{ from: 'r1', to: 'r3' }] };
    assert.deepEqual(names(priorityLevels(self('r1/z1/s1'), all, setting)), [
      ['r1/z1/s1'],
      ['r1/z1/s2'],
      ['r1/z2/s1'],
      ['r3/z1/s1'],
      ['r2/z1/s1'],
    ]);
    // An entry from another region changes nothing for this proxy.
    assert.deepEqual(names(priorityLevels(self('r2/z1/s1'), all, setting)), [
      ['r2/z1/s1'],
      ['r1/z1/s1', 'r1/z1/s2', 'r1/z2/s1', 'r3/z1/s1'],
    ]);
  });

  test('failoverPriority alone: ranks by the labels matched in order, locality ignored', () => {
    const a = eps('r1/z1/s1', 1, { net: 'n1', tier: 'gold' });
    const b = eps('r2/z1/s1', 1, { net: 'n1', tier: 'gold' });
    const c = eps('r1/z1/s1', 1, { net: 'n1', tier: 'silver' });
    const d = eps('r1/z1/s1', 1, { net: 'n2', tier: 'gold' });
    const me = self('r1/z1/s1', { net: 'n1', tier: 'gold' });
    const levels = priorityLevels(me, [d, c, b, a].flat(), { failoverPriority: ['net', 'tier'] });
    assert.deepEqual(
      levels.map((l) => l[0].endpoints),
      [[b[0], a[0]], c, d],
    );
    // `label=value` ranks by that value instead of the proxy's.
    const forced = priorityLevels(me, [a[0], d[0]], { failoverPriority: ['net=n2'] });
    assert.deepEqual(
      forced.map((l) => l[0].endpoints),
      [d, a],
    );
    // Locality labels are read from the locality.
    const byRegion = priorityLevels(me, [b[0], a[0]], {
      failoverPriority: ['topology.kubernetes.io/region'],
    });
    assert.deepEqual(
      byRegion.map((l) => l[0].endpoints),
      [a, b],
    );
  });

  test('failoverPriority with failover: labels first, locality within each', () => {
    const near1 = eps('r1/z1/s1', 1, { net: 'n1' });
    const far1 = eps('r2/z1/s1', 1, { net: 'n1' });
    const near2 = eps('r1/z1/s1', 1, { net: 'n2' });
    const levels = priorityLevels(self('r1/z1/s1', { net: 'n1' }), [near2, far1, near1].flat(), {
      failoverPriority: ['net'],
      failover: [{ from: 'r1', to: 'r2' }],
    });
    assert.deepEqual(
      levels.map((l) => l[0].endpoints),
      [near1, far1, near2],
    );
  });

  test('distribute: one level, localities weighted; a wildcard shares by endpoint count; others dropped', () => {
    const endpoints = [
      ...eps('r1/z1/s1', 2),
      ...eps('r1/z2/s1', 3),
      ...eps('r1/z3/s1', 1),
      ...eps('r2/z1/s1', 2),
    ];
    const setting = { distribute: [{ from: 'r1/z1/*', to: { 'r1/z1/*': 80, 'r1/*': 20 } }] };
    const [level, ...rest] = priorityLevels(self('r1/z1/s1'), endpoints, setting);
    assert.equal(rest.length, 0);
    const weights = Object.fromEntries(level.map((g) => [localityString(g.endpoints[0].locality), g.weight]));
    assert.deepEqual(weights, { 'r1/z1/s1': 80, 'r1/z2/s1': 15, 'r1/z3/s1': 5 });
  });

  test('distribute with no entry for this proxy: one level, every endpoint, no weighting', () => {
    const endpoints = [...eps('r1/z1/s1', 1), ...eps('r2/z1/s1', 1)];
    const levels = priorityLevels(self('r3/z1/s1'), endpoints, {
      distribute: [{ from: 'r1/*', to: { 'r1/*': 100 } }],
    });
    assert.deepEqual(levels, [[{ endpoints, weight: 1 }]]);
  });
});

describe('priorityLoad (Envoy, overprovisioning 1.4)', () => {
  const close = (actual: number[], expected: number[]) =>
    assert.ok(
      actual.every((a, i) => Math.abs(a - expected[i]) < 1e-9),
      `${actual} != ${expected}`,
    );

  test('a level at 72% health or more keeps all the traffic', () => {
    close(priorityLoad([1, 1]), [1, 0]);
    close(priorityLoad([0.75, 1]), [1, 0]);
  });

  test('below, it keeps healthy × 1.4 and the rest spills to the next levels', () => {
    close(priorityLoad([0.5, 1]), [0.7, 0.3]);
    close(priorityLoad([0.5, 0.1, 1]), [0.7, 0.14, 0.16]);
    close(priorityLoad([0, 1]), [0, 1]);
  });

  test('when the levels together are short of 100%, loads are normalised', () => {
    close(priorityLoad([0.25, 0.25]), [0.5, 0.5]);
    close(priorityLoad([0.3, 0.1]), [0.75, 0.25]);
  });

  test('nothing healthy: no load', () => {
    close(priorityLoad([0, 0]), [0, 0]);
  });
});

describe('LocalityBalancer', () => {
  const me = self('r1/z1/s1');
  const cluster = () => [...eps('r1/z1/s1', 4), ...eps('r1/z2/s1', 4), ...eps('r2/z1/s1', 4)];

  test('traffic stays in the proxy zone while it is healthy', () => {
    const lb = balancer(me, cluster());
    assert.deepEqual([...spread(lb)], [['r1/z1/s1', 1]]);
  });

  test('when its zone empties, traffic moves to the next level, and back after refresh', () => {
    const endpoints = cluster();
    const lb = balancer(me, endpoints);
    for (const e of endpoints.slice(0, 4)) e.up = false;
    // Not before refresh: health is read when the caller says it changed.
    assert.deepEqual([...spread(lb, 100)], [['r1/z1/s1', 1]]);
    lb.refresh();
    assert.deepEqual([...spread(lb)], [['r1/z2/s1', 1]]);
    for (const e of endpoints.slice(4, 8)) e.up = false;
    lb.refresh();
    assert.deepEqual([...spread(lb)], [['r2/z1/s1', 1]]);
    for (const e of endpoints) e.up = true;
    lb.refresh();
    assert.deepEqual([...spread(lb)], [['r1/z1/s1', 1]]);
  });

  test('partial health spills in proportion: 50% healthy in its zone keeps 70% there', () => {
    const endpoints = cluster();
    const lb = balancer(me, endpoints);
    endpoints[0].up = false;
    endpoints[1].up = false;
    lb.refresh();
    const s = spread(lb);
    near(s.get('r1/z1/s1'), 0.7);
    near(s.get('r1/z2/s1'), 0.3);
    assert.equal(s.get('r2/z1/s1'), undefined);
    // Only healthy endpoints of the zone are picked.
    for (let i = 0; i < 1000; i++) assert.ok(lb.pick()!.up);
  });

  test('failover: the `to` region takes over when the proxy region is down', () => {
    const endpoints = [...eps('r1/z1/s1', 2), ...eps('r2/z1/s1', 2), ...eps('r3/z1/s1', 2)];
    const lb = balancer(me, endpoints, { failover: [{ from: 'r1', to: 'r3' }] }, 0);
    endpoints[0].up = false;
    endpoints[1].up = false;
    lb.refresh();
    assert.deepEqual([...spread(lb)], [['r3/z1/s1', 1]]);
  });

  test('distribute weights hold over 10k picks', () => {
    const endpoints = [...eps('r1/z1/s1', 2), ...eps('r1/z2/s1', 3), ...eps('r2/z1/s1', 5)];
    const setting = { distribute: [{ from: 'r1/z1/*', to: { 'r1/z1/*': 60, 'r1/z2/*': 30, 'r2/*': 10 } }] };
    const s = spread(balancer(me, endpoints, setting));
    near(s.get('r1/z1/s1'), 0.6);
    near(s.get('r1/z2/s1'), 0.3);
    near(s.get('r2/z1/s1'), 0.1);
  });

  test('distribute: a locality losing health loses weight by healthy × 1.4', () => {
    const endpoints = [...eps('r1/z1/s1', 2), ...eps('r2/z1/s1', 2)];
    const lb = balancer(me, endpoints, { distribute: [{ from: 'r1/*', to: { 'r1/*': 50, 'r2/*': 50 } }] });
    endpoints[0].up = false;
    lb.refresh();
    // 50 × min(1, 0.5 × 1.4) = 35 against 50.
    near(spread(lb).get('r1/z1/s1'), 35 / 85);
  });

  test('panic: a level under the threshold balances over all its endpoints', () => {
    const endpoints = [...eps('r1/z1/s1', 10), ...eps('r1/z2/s1', 10)];
    const lb = balancer(me, endpoints, {}, 50);
    for (const e of endpoints.slice(0, 6)) e.up = false;
    lb.refresh();
    // The zone at 40% keeps 56% of the load, in panic: unhealthy endpoints picked with the healthy.
    const local = Array.from({ length: 10_000 }, () => lb.pick()!).filter((e) => e.locality.zone === 'z1');
    near(local.length / 10_000, 0.56);
    near(local.filter((e) => !e.up).length / local.length, 0.6, 0.03);
  });

  test('total panic: every level under the threshold, load follows endpoint counts', () => {
    const endpoints = [...eps('r1/z1/s1', 1), ...eps('r1/z2/s1', 3)];
    const lb = balancer(me, endpoints, {}, 50);
    for (const e of endpoints) e.up = false;
    lb.refresh();
    const s = spread(lb);
    near(s.get('r1/z1/s1'), 0.25);
    near(s.get('r1/z2/s1'), 0.75);
  });

  test('no panic threshold: nothing healthy picks none', () => {
    const endpoints = cluster();
    const lb = balancer(me, endpoints, {}, 0);
    for (const e of endpoints) e.up = false;
    lb.refresh();
    assert.equal(lb.pick(), undefined);
  });

  test('no endpoints: none', () => {
    assert.equal(balancer(me, []).pick(), undefined);
    assert.equal(balancer(me, [], { distribute: [{ from: '*', to: { '*': 100 } }] }).pick(), undefined);
  });
});
