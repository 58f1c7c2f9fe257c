import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { hashKey, MAX_RING_SIZE, Maglev, RingHash } from './consistent-hash.ts';
import type { Balanced } from './load-balancer.ts';
import { EndpointState } from './state.ts';

const endpoints = (n: number, from = 0): Balanced[] =>
  Array.from({ length: n }, (_, i) => ({
    state: new EndpointState(`c|10.0.${(from + i) >> 8}.${(from + i) & 255}:80`),
  }));

/** Request keys as a client would send them (user ids in a header); the same on every run. */
const keys = Array.from({ length: 10_000 }, (_, i) => hashKey(`user-${i}`));

interface Picker {
  pick(hash: number): Balanced | undefined;
}
type Make = (eps: readonly Balanced[]) => Picker;

function shares(lb: Picker): Map<Balanced, number> {
  const counts = new Map<Balanced, number>();
  for (const k of keys) {
    const e = lb.pick(k)!;
    counts.set(e, (counts.get(e) ?? 0) + 1);
  }
  return counts;
}

describe('hashKey', () => {
  test('is MurmurHash3 x86_32 (seed 0) of the UTF-8 bytes', () => {
    assert.equal(hashKey(''), 0);
    assert.equal(hashKey('hello'), 0x248bfa47);
    assert.equal(hashKey('The quick brown fox jumps over the lazy dog'), 0x2e4ff723);
    // Multi-byte characters hash as their UTF-8 encoding, not as UTF-16 units.
    assert.equal(hashKey('ü'), hashKey('\u00fc'));
    assert.notEqual(hashKey('ü'), hashKey('u'));
  });

  test('handles keys longer than its scratch buffer', () => {
    const long = 'x'.repeat(10_000);
    assert.equal(hashKey(long), hashKey(long));
    assert.notEqual(hashKey(long), hashKey(`${long}y`));
  });

  test('spreads similar keys over the whole 32-bit range', () => {
    const buckets = new Array(16).fill(0);
    for (const k of keys) buckets[k >>> 28]++;
    for (const b of buckets) assert.ok(b > 500 && b < 750, `bucket ${b} of ${keys.length}`);
  });
});

const algorithms: [string, Make, number][] = [
  // A ring of 1024 points over 5 endpoints leaves arcs uneven: a generous bound.
  ['RingHash', (eps) => new RingHash(eps), 0.25],
  // Maglev gives each endpoint M/n slots give or take one: only sampling noise is left.
  ['Maglev', (eps) => new Maglev(eps), 0.08],
];

for (const [name, make, bound] of algorithms) {
  describe(`${name}: consistent hashing`, () => {
    test('no endpoint: undefined', () => {
      assert.equal(make([]).pick(123), undefined);
    });

    test('one endpoint: always that one, for hashes at both ends of the range too', () => {
      const eps = endpoints(1);
      const lb = make(eps);
      for (const k of [0, 1, 0xffffffff, ...keys.slice(0, 100)]) assert.equal(lb.pick(k), eps[0]);
    });

    test(`every endpoint gets its share of 10k keys, within ±${bound * 100}%`, () => {
      const eps = endpoints(5);
      const counts = shares(make(eps));
      assert.equal(counts.size, 5);
      const fair = keys.length / 5;
      for (const n of counts.values())
        assert.ok(Math.abs(n - fair) < fair * bound, `share ${n} of ${keys.length}`);
    });

    test('the same key always reaches the same endpoint, whatever order the endpoints are listed in', () => {
      const eps = endpoints(8);
      const a = make(eps);
      const b = make([...eps].reverse());
      for (const k of keys.slice(0, 1000)) {
        assert.equal(a.pick(k), a.pick(k));
        assert.equal(a.pick(k), b.pick(k));
      }
    });

    test('when one of N endpoints leaves, about 1/N of the keys move', () => {
      const n = 10;
      const eps = endpoints(n);
      const before = make(eps);
      const removed = eps[3];
      const after = make(eps.filter((e) => e !== removed));
      let moved = 0;
      let movedElsewhere = 0;
      for (const k of keys) {
        const was = before.pick(k);
        const is = after.pick(k);
        assert.notEqual(is, removed);
        if (was === is) continue;
        moved++;
        if (was !== removed) movedElsewhere++;
      }
      // The removed endpoint's keys must move (its share: 1/N, within the bound above).
      assert.ok(moved <= (keys.length / n) * (1 + bound), `${moved} of ${keys.length} keys moved`);
      if (name === 'RingHash') {
        // A ring only loses the removed endpoint's points: no other key moves.
        assert.equal(movedElsewhere, 0);
      } else {
        // Maglev refills the whole table, and a few slots change hands between endpoints that
        // stayed; the paper measures this disruption in low single-digit percent.
        assert.ok(
          movedElsewhere < keys.length * 0.03,
          `${movedElsewhere} keys moved between remaining endpoints`,
        );
      }
    });

    test('when an endpoint joins, keys move only onto it', () => {
      const eps = endpoints(6);
      const joined = endpoints(1, 100)[0];
      const before = make(eps);
      const after = make([...eps, joined]);
      let movedElsewhere = 0;
      for (const k of keys) {
        const was = before.pick(k);
        const is = after.pick(k);
        if (was !== is && is !== joined) movedElsewhere++;
      }
      assert.ok(movedElsewhere <= (name === 'RingHash' ? 0 : keys.length * 0.03), `${movedElsewhere} moved`);
    });
  });
}

describe('RingHash sizing', () => {
  test('at least minimumRingSize points, a power of two per endpoint, and at least one', () => {
    assert.equal(new RingHash(endpoints(3)).size, 3 * 512);
    assert.equal(new RingHash(endpoints(5)).size, 5 * 256);
    assert.equal(new RingHash(endpoints(3), 10).size, 3 * 4);
    assert.equal(new RingHash(endpoints(2000), 1024).size, 2000);
  });

  test('capped at the maximum (default and limit: 8M, as Envoy) however large the minimum', () => {
    assert.equal(MAX_RING_SIZE, 8 * 1024 * 1024);
    // Building an 8M ring takes seconds, so the cap is checked with a lower maximum.
    assert.equal(new RingHash(endpoints(3), 2 ** 30, 1000).size, 3 * 333);
  });

  test('points per endpoint change only when the endpoint count crosses a power of two', () => {
    const sizes = [5, 6, 7].map((n) => new RingHash(endpoints(n)).size / n);
    assert.deepEqual(sizes, [256, 256, 256]);
    assert.equal(new RingHash(endpoints(8)).size / 8, 128);
  });
});

describe('Maglev table size', () => {
  test('a size that is not prime is refused with a clear error', () => {
    for (const size of [65536, 1000, 1, 0, -7, 65537.5]) {
      assert.throws(() => new Maglev(endpoints(3), size), /maglev table size .* must be a prime number/);
    }
  });

  test('beyond Envoy largest table size is refused', () => {
    assert.throws(() => new Maglev(endpoints(3), 5000101), /at most 5000011/);
  });

  test('a small prime size works, every slot taken', () => {
    const eps = endpoints(3);
    const lb = new Maglev(eps, 7);
    const seen = new Set<Balanced>();
    for (let h = 0; h < 7; h++) seen.add(lb.pick(h)!);
    assert.equal(seen.size, 3);
  });
});
