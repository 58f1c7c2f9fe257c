// Consistent hashing over a cluster's endpoints (DestinationRule `consistentHash`): Envoy's RING_HASH
// and MAGLEV. A request's hash key (header, cookie, source IP, query parameter) hashes to a number,
// and the same number reaches the same endpoint for as long as the endpoint set is unchanged; when
// one endpoint leaves, mostly only the keys it had move. Tables are built when the snapshot is
// applied; a lookup allocates nothing.
import type { Balanced } from './load-balancer.ts';

// Reused by every hash: encoding a key must not allocate per request.
const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

/** MurmurHash3 (x86, 32-bit) of the string's UTF-8 bytes. */
function murmur3(value: string, seed: number): number {
  // A UTF-16 unit never takes more than 3 UTF-8 bytes.
  if (value.length * 3 > scratch.length) scratch = new Uint8Array(value.length * 3);
  const bytes = scratch;
  const len = encoder.encodeInto(value, bytes).written;
  let h = seed >>> 0;
  const blocks = len & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = len & 3;
  if (rest > 0) {
    let k = bytes[blocks];
    if (rest > 1) k |= bytes[blocks + 1] << 8;
    if (rest > 2) k |= bytes[blocks + 2] << 16;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A request's hash key as an unsigned 32-bit number, for `pick`. */
export function hashKey(value: string): number {
  return murmur3(value, 0);
}

/** Endpoints in key order: a table must not depend on the order a snapshot happens to list them in. */
function byKey<E extends Balanced>(endpoints: readonly E[]): E[] {
  return [...endpoints].sort((a, b) => (a.state.key < b.state.key ? -1 : a.state.key > b.state.key ? 1 : 0));
}

export const MIN_RING_SIZE = 1024;
/** Envoy's cap on the ring, whatever the minimum asked. */
export const MAX_RING_SIZE = 8 * 1024 * 1024;
// Ring points are sorted packed as `hash * 2^21 + endpoint`, exact in a double.
const ENDPOINT_BITS = 2 ** 21;

/**
 * Envoy's ring hash (ketama): each endpoint hashed onto a 32-bit ring at many points, a key goes to
 * the first point at or after its hash. Envoy gives each of n endpoints ceil(minimumRingSize / n)
 * points, so when one leaves every other endpoint gains points and takes keys from its neighbours
 * (istio/istio#41814). Here that count is rounded up to a power of two: it changes only when n
 * crosses a power of two, and otherwise an endpoint leaving moves its own keys and no others.
 */
export class RingHash<E extends Balanced> {
  private readonly endpoints: readonly E[];
  /** Sorted point hashes, and the endpoint at each. */
  private readonly points: Uint32Array;
  private readonly owners: Uint32Array;

  /** `maximumRingSize` is Envoy's `maximum_ring_size`, itself capped at 8M. */
  constructor(endpoints: readonly E[], minimumRingSize = MIN_RING_SIZE, maximumRingSize = MAX_RING_SIZE) {
    const n = endpoints.length;
    if (n >= ENDPOINT_BITS) throw new Error(`ring hash: ${n} endpoints, at most ${ENDPOINT_BITS - 1}`);
    this.endpoints = byKey(endpoints);
    const wanted = 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(minimumRingSize / n))));
    const perEndpoint =
      n === 0 ? 0 : Math.max(1, Math.min(wanted, Math.floor(Math.min(maximumRingSize, MAX_RING_SIZE) / n)));
    const packed = new Float64Array(n * perEndpoint);
    for (let e = 0; e < n; e++) {
      const key = this.endpoints[e].state.key;
      for (let i = 0; i < perEndpoint; i++)
        packed[e * perEndpoint + i] = hashKey(`${key}_${i}`) * ENDPOINT_BITS + e;
    }
    // A typed array sorts numerically; equal hashes fall to the endpoint first in key order.
    packed.sort();
    this.points = new Uint32Array(packed.length);
    this.owners = new Uint32Array(packed.length);
    for (let i = 0; i < packed.length; i++) {
      this.points[i] = Math.floor(packed[i] / ENDPOINT_BITS);
      this.owners[i] = packed[i] % ENDPOINT_BITS;
    }
  }

  get size(): number {
    return this.points.length;
  }

  /** The endpoint for an unsigned 32-bit hash (`hashKey`); undefined only with no endpoints. */
  pick(hash: number): E | undefined {
    const points = this.points;
    if (points.length === 0) return undefined;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid] < hash) lo = mid + 1;
      else hi = mid;
    }
    return this.endpoints[this.owners[lo === points.length ? 0 : lo]];
  }
}

export const MAGLEV_TABLE_SIZE = 65537;
/** Envoy's largest table size. */
export const MAX_MAGLEV_TABLE_SIZE = 5000011;

function isPrime(n: number): boolean {
  if (n < 2 || n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * Maglev (Eisenbud et al., NSDI 2016, as in Envoy): a lookup table of prime size M where each endpoint
 * takes, in turn, the next free slot of its own permutation of the table (offset and skip from two
 * hashes of its key), so every endpoint holds M/n slots give or take one. On a change most slots keep
 * their endpoint, but not all: a few keys move between endpoints that stayed.
 */
export class Maglev<E extends Balanced> {
  private readonly endpoints: readonly E[];
  private readonly table: Uint32Array;

  constructor(endpoints: readonly E[], tableSize = MAGLEV_TABLE_SIZE) {
    // With M not prime some skip shares a factor with M, its permutation misses slots, and filling
    // the table may never end.
    if (!Number.isInteger(tableSize) || !isPrime(tableSize) || tableSize > MAX_MAGLEV_TABLE_SIZE) {
      throw new Error(
        `maglev table size ${tableSize} must be a prime number, at most ${MAX_MAGLEV_TABLE_SIZE}`,
      );
    }
    this.endpoints = byKey(endpoints);
    const n = this.endpoints.length;
    const m = tableSize;
    this.table = new Uint32Array(n === 0 ? 0 : m);
    if (n === 0) return;
    const next = new Float64Array(n);
    const skip = new Float64Array(n);
    for (let e = 0; e < n; e++) {
      const key = this.endpoints[e].state.key;
      next[e] = murmur3(key, 0) % m;
      skip[e] = (murmur3(key, 1) % (m - 1)) + 1;
    }
    const taken = new Uint8Array(m);
    for (let filled = 0; ; ) {
      for (let e = 0; e < n; e++) {
        let slot = next[e];
        while (taken[slot]) slot = (slot + skip[e]) % m;
        taken[slot] = 1;
        this.table[slot] = e;
        next[e] = (slot + skip[e]) % m;
        if (++filled === m) return;
      }
    }
  }

  /** The endpoint for an unsigned 32-bit hash (`hashKey`); undefined only with no endpoints. */
  pick(hash: number): E | undefined {
    return this.table.length === 0 ? undefined : this.endpoints[this.table[hash % this.table.length]];
  }
}
