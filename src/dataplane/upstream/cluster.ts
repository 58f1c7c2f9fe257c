// A cluster at run time: its endpoints, each paired with the state that outlives the snapshot, and
// the load balancer over the available ones — healthy, not ejected by outlier detection — rebuilt
// only when that set changes (an ejection or a return bumps the cluster's health epoch).
import type { Cluster, Endpoint, HashKey } from '../../compile/snapshot.ts';
import { endpointPeer, type PeerInfo } from '../telemetry.ts';
import { hashKey, Maglev, RingHash } from './consistent-hash.ts';
import { type LoadBalancer, loadBalancer } from './load-balancer.ts';
import { type Locality, LocalityBalancer, localityOf, localityString } from './locality.ts';
import { OutlierDetector } from './outlier.ts';
import { type ClusterState, type EndpointState, UpstreamState } from './state.ts';

export class EndpointRuntime {
  readonly endpoint: Endpoint;
  readonly state: EndpointState;
  /** Telemetry's view of the endpoint, worked out when the snapshot is applied. */
  readonly peer: PeerInfo;
  /** Its place in the cluster's endpoint list, for what layers keep per endpoint. */
  readonly index: number;
  readonly locality: Locality;
  readonly labels: Readonly<Record<string, string>> | undefined;
  readonly weight: number | undefined;
  constructor(endpoint: Endpoint, state: EndpointState, index: number) {
    this.endpoint = endpoint;
    this.weight = endpoint.weight;
    this.state = state;
    this.index = index;
    this.peer = endpointPeer(endpoint);
    this.locality = localityOf(endpoint.labels);
    this.labels = endpoint.labels;
  }
}

/** What consistent hashing reads of a request (an UpstreamRequest is one). */
export interface HashedRequest {
  readonly headers: Readonly<Record<string, string | string[] | number | undefined>>;
  readonly path: string;
  readonly sourceAddress: string;
  /** Set when the balancer makes the hash cookie up, for the response. */
  setCookie?: string;
  /** A retry that should leave the localities tried so far. */
  readonly remoteLocalities?: boolean;
}

interface Hashed {
  /** What the request is hashed on. */
  key: HashKey;
  ring: { pick(hash: number): EndpointRuntime | undefined };
}

/** The proxy's own place, for locality-aware balancing. */
export interface ClusterSelf {
  locality: Locality;
  labels?: Readonly<Record<string, string>>;
}

export class ClusterRuntime {
  readonly cluster: Cluster;
  readonly endpoints: readonly EndpointRuntime[];
  readonly state: ClusterState;
  readonly outlier: OutlierDetector | undefined;
  private readonly self: ClusterSelf;
  private epoch = -1;
  /** Some endpoint is still in its warmup window: picks are weighted until none is. */
  private warming = false;
  private lb!: LoadBalancer<EndpointRuntime>;
  /** What the balancer picks from now. */
  private up: readonly EndpointRuntime[] = [];
  private hashed: Hashed | undefined;

  constructor(cluster: Cluster, state: UpstreamState, self: ClusterSelf = { locality: localityOf() }) {
    this.cluster = cluster;
    this.self = self;
    this.state = state.cluster(cluster.name);
    this.endpoints = cluster.endpoints.map(
      (e, i) =>
        new EndpointRuntime(e, state.endpoint(UpstreamState.endpointKey(cluster.name, e.address, e.port)), i),
    );
    this.outlier = cluster.outlierDetection
      ? new OutlierDetector(cluster.outlierDetection, this.state, this.endpoints.length)
      : undefined;
    // Without outlier detection, ejections an earlier rule made are over, as Envoy drops them.
    if (!this.outlier && this.state.ejected > 0) {
      for (const e of this.endpoints) {
        e.state.ejectedUntil = 0;
        e.state.ejectReason = '';
      }
      this.state.ejected = 0;
      this.state.healthChanged();
    }
    // Endpoints that join a cluster already serving warm up (Envoy's slow start); the first ones don't.
    const now = Date.now();
    for (const e of this.endpoints) {
      if (!e.state.fresh) continue;
      e.state.fresh = false;
      if (this.state.built) e.state.joinedAt = now;
    }
    this.state.built = true;
    // Refuses a policy this proxy cannot balance with, when the snapshot is applied.
    this.rebuild();
  }

  /** The endpoints requests may go to now; with too few, outlier ejections are ignored (panic). */
  private available(): EndpointRuntime[] {
    const ready = this.endpoints.filter((e) => e.endpoint.healthy);
    // Ejections from an outlier detection the cluster no longer has do not count, as Envoy drops them.
    if (!this.outlier) return ready;
    const up = ready.filter((e) => e.state.ejectedUntil === 0);
    const min = this.cluster.outlierDetection?.minHealthPercent ?? 0;
    if (min > 0 && ready.length > 0 && (up.length * 100) / ready.length < min) return ready;
    return up;
  }

  private rebuild(): void {
    this.epoch = this.state.healthEpoch;
    const policy = this.cluster.lb;
    const available = this.available();
    this.up = available;
    const w = this.cluster.warmup;
    this.warming = w !== undefined && available.some((e) => e.state.joinedAt + w.windowMs > Date.now());
    this.hashed = undefined;
    if (policy.type === 'RING_HASH')
      this.hashed = { key: policy.hash, ring: new RingHash(available, policy.tableSize) };
    else if (policy.type === 'MAGLEV')
      this.hashed = { key: policy.hash, ring: new Maglev(available, policy.tableSize) };
    // An original destination cluster (PASSTHROUGH, no endpoints) is never asked to pick.
    const originalDst = policy.type === 'PASSTHROUGH' && this.endpoints.length === 0;
    const inner = (eps: readonly EndpointRuntime[]) =>
      loadBalancer(
        policy.type === 'RING_HASH' || policy.type === 'MAGLEV' || originalDst ? { type: 'RANDOM' } : policy,
        eps,
        this.state,
      );
    const locality = this.cluster.locality;
    if (locality && !this.hashed) {
      const set = new Set(available);
      this.lb = new LocalityBalancer({
        self: this.self,
        endpoints: this.endpoints.filter((e) => e.endpoint.healthy),
        setting: locality,
        healthy: (e) => set.has(e),
        inner,
        panicThreshold: this.cluster.outlierDetection?.minHealthPercent ?? 0,
      });
    } else this.lb = inner(available);
  }

  /** An endpoint for `req`, or undefined when none is available. */
  pick(req?: HashedRequest): EndpointRuntime | undefined {
    if (this.epoch !== this.state.healthEpoch) this.rebuild();
    if (this.warming) {
      const ep = this.warmPick();
      if (ep) return ep;
    }
    if (this.hashed) {
      const value = req ? hashInput(this.hashed.key, req) : undefined;
      // No key in the request: Envoy picks at random.
      if (value !== undefined) return this.hashed.ring.pick(hashKey(value));
    }
    return this.lb.pick();
  }

  /**
   * Envoy's slow start, as a weighted random pick: an endpoint `t` into its window weighs
   * max(minimumPercent, (t / window)^(1 / aggression)) of a full one. Undefined once no endpoint is
   * warming any more, and from then on the cluster's own balancer decides.
   */
  private warmPick(): EndpointRuntime | undefined {
    const w = this.cluster.warmup!;
    const now = Date.now();
    const up = this.up;
    const weight = (e: EndpointRuntime) => {
      const t = now - e.state.joinedAt;
      return t < w.windowMs ? Math.max(w.minimumPercent / 100, (t / w.windowMs) ** (1 / w.aggression)) : 1;
    };
    let total = 0;
    for (const e of up) total += weight(e);
    if (total === up.length) {
      this.warming = false;
      return undefined;
    }
    let r = Math.random() * total;
    for (const e of up) {
      r -= weight(e);
      if (r < 0) return e;
    }
    return up[up.length - 1];
  }

  /**
   * For a retry: an endpoint not in `tried` if there is one. The balancer is asked a few times, as
   * Envoy's previous-hosts predicate does; a balancer that keeps choosing a tried endpoint (least
   * request favours one that fails fast) is then passed over for the first untried one.
   */
  pickAvoiding(req: HashedRequest, tried: readonly EndpointRuntime[]): EndpointRuntime | undefined {
    if (req.remoteLocalities) {
      // Envoy's previous-priorities predicate, by locality: the first endpoint elsewhere.
      const seen = new Set(tried.map((e) => localityString(e.locality)));
      const elsewhere = this.up.find((e) => !seen.has(localityString(e.locality)));
      if (elsewhere) return elsewhere;
    }
    let ep = this.pick(req);
    for (let i = 1; i < 5 && ep && tried.includes(ep); i++) ep = this.pick(req);
    if (!ep || !tried.includes(ep)) return ep;
    return this.up.find((e) => !tried.includes(e)) ?? ep;
  }
}

/** The request's value for the hash key, or undefined when it has none. */
function hashInput(key: HashKey, req: HashedRequest): string | undefined {
  if ('header' in key) {
    const v = req.headers[key.header];
    return v === undefined ? undefined : String(v);
  }
  if ('sourceIp' in key) return req.sourceAddress || undefined;
  if ('queryParameter' in key) {
    const q = req.path.indexOf('?');
    if (q < 0) return undefined;
    return new URLSearchParams(req.path.slice(q + 1)).get(key.queryParameter) ?? undefined;
  }
  const name = key.cookie.name;
  const cookies = req.headers.cookie;
  for (const part of String(cookies ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  // Envoy makes the cookie up when the rule gives it a ttl, and sets it on the response.
  if (key.cookie.ttlMs === undefined) return undefined;
  const value = crypto.randomUUID().replaceAll('-', '');
  const attrs = [`${name}="${value}"`];
  if (key.cookie.path) attrs.push(`Path=${key.cookie.path}`);
  if (key.cookie.ttlMs > 0) attrs.push(`Max-Age=${Math.floor(key.cookie.ttlMs / 1000)}`);
  for (const a of key.cookie.attributes ?? []) attrs.push(a.value ? `${a.name}=${a.value}` : a.name);
  attrs.push('HttpOnly');
  req.setCookie = attrs.join('; ');
  return `"${value}"`;
}
