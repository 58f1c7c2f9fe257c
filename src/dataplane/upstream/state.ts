// Upstream state that outlives a snapshot. A push rebuilds every runtime structure, but what the
// proxy has learnt about its upstreams (requests in flight, the load balancer's position, ejections,
// breaker counters) belongs to the endpoint and the cluster, not to the snapshot that listed them. It
// is kept across swaps, keyed like the pooled connections (cluster and address), and dropped when a
// snapshot no longer lists it.

import type { Ejection } from '../../push/protocol.ts';

/** One endpoint as a member of one cluster (Istio's subsets are clusters of their own). */
export class EndpointState {
  readonly key: string;
  /** Requests dispatched to it and not yet over. */
  active = 0;
  // Outlier detection: consecutive failures of each kind since the last success.
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  /** `Date.now()` until which it is ejected; 0: not ejected. */
  ejectedUntil = 0;
  /** What ejected it, e.g. `5 consecutive 5xx`. */
  ejectReason = '';
  /** Envoy's ejection multiplier: each ejection lasts baseEjectionTime times this. */
  ejections = 0;
  /** When it last came back, for bringing the multiplier down while it stays healthy. */
  returnedAt = 0;
  /** When it joined a cluster that had endpoints before (slow start); 0: there from the start. */
  joinedAt = 0;
  /** Not yet seen by a cluster runtime. */
  fresh = true;
  constructor(key: string) {
    this.key = key;
  }
}

/**
 * Envoy's per-cluster counters (`cluster.<name>.<stat>`), on the admin endpoint. Gauges are kept
 * with the counters; `render` tells them apart.
 */
export class ClusterStats {
  upstream_rq_total = 0;
  upstream_rq_retry = 0;
  upstream_rq_retry_success = 0;
  upstream_rq_retry_overflow = 0;
  upstream_rq_retry_limit_exceeded = 0;
  upstream_rq_timeout = 0;
  upstream_rq_per_try_timeout = 0;
  upstream_rq_pending_overflow = 0;
  upstream_rq_pending_total = 0;
  upstream_cx_overflow = 0;
  outlier_detection_ejections_enforced_total = 0;
  outlier_detection_ejections_overflow = 0;
}

export const CLUSTER_GAUGES = [
  'upstream_rq_active',
  'upstream_rq_pending_active',
  'upstream_rq_retry_active',
  'outlier_detection_ejections_active',
] as const;

const GAUGE: Record<(typeof CLUSTER_GAUGES)[number], (c: ClusterState) => number> = {
  upstream_rq_active: (c) => c.active,
  upstream_rq_pending_active: (c) => c.pending,
  upstream_rq_retry_active: (c) => c.activeRetries,
  outlier_detection_ejections_active: (c) => c.ejected,
};

export class ClusterState {
  readonly name: string;
  /** Where round robin goes next. */
  cursor = 0;
  readonly stats = new ClusterStats();
  /** Requests in flight (circuit breaking's max requests). */
  active = 0;
  /** HTTP/1.1 requests holding a connection (circuit breaking's max connections). */
  activeH1 = 0;
  /** HTTP/1.1 requests waiting for one. */
  pending = 0;
  /** Proxied TCP connections open or opening (circuit breaking's max connections, for TCP). */
  activeTcp = 0;
  /** Retries in flight (circuit breaking's max retries). */
  activeRetries = 0;
  /** Endpoints ejected now. */
  ejected = 0;
  /** A runtime was built for it before: endpoints that appear from now on are new to it. */
  built = false;
  /** Changes whenever an endpoint is ejected or returns: the load balancer rebuilds on it. */
  healthEpoch = 0;
  private readonly onHealth: (() => void) | undefined;
  constructor(name: string, onHealth?: () => void) {
    this.name = name;
    this.onHealth = onHealth;
  }

  /** An endpoint was ejected or came back. */
  healthChanged(): void {
    this.healthEpoch++;
    this.onHealth?.();
  }
}

export class UpstreamState {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly clusters = new Map<string, ClusterState>();
  private readonly onHealth: (() => void) | undefined;

  /** `onHealth` hears of every ejection and return, e.g. to report them to the control plane. */
  constructor(onHealth?: () => void) {
    this.onHealth = onHealth;
  }

  /** The endpoints ejected now. */
  ejected(): Ejection[] {
    const out: Ejection[] = [];
    for (const e of this.endpoints.values()) {
      if (e.ejectedUntil === 0) continue;
      const bar = e.key.lastIndexOf('|');
      const colon = e.key.lastIndexOf(':');
      out.push({
        cluster: e.key.slice(0, bar),
        address: e.key.slice(bar + 1, colon),
        port: Number(e.key.slice(colon + 1)),
        reason: e.ejectReason,
        until: new Date(e.ejectedUntil).toISOString(),
      });
    }
    return out;
  }

  static endpointKey(cluster: string, address: string, port: number): string {
    return `${cluster}|${address}:${port}`;
  }

  endpoint(key: string): EndpointState {
    let s = this.endpoints.get(key);
    if (!s) {
      s = new EndpointState(key);
      this.endpoints.set(key, s);
    }
    return s;
  }

  cluster(name: string): ClusterState {
    let s = this.clusters.get(name);
    if (!s) {
      s = new ClusterState(name, this.onHealth);
      this.clusters.set(name, s);
    }
    return s;
  }

  /** After a swap: forget what the new snapshot no longer has. */
  retain(endpoints: ReadonlySet<string>, clusters: ReadonlySet<string>): void {
    for (const key of this.endpoints.keys()) if (!endpoints.has(key)) this.endpoints.delete(key);
    for (const name of this.clusters.keys()) if (!clusters.has(name)) this.clusters.delete(name);
  }

  /** Each cluster's counters and gauges, for the report to the control plane. */
  counters(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const c of this.clusters.values()) {
      const all: Record<string, number> = { ...c.stats };
      for (const g of CLUSTER_GAUGES) all[g] = GAUGE[g](c);
      out[c.name] = all;
    }
    return out;
  }

  has(key: string): boolean {
    return this.endpoints.has(key);
  }

  /** Every cluster's counters and gauges in Prometheus text, as Envoy's `/stats/prometheus` names them. */
  render(): string {
    const lines: string[] = [];
    const counters = Object.keys(new ClusterStats()) as (keyof ClusterStats)[];
    const label = (n: string) => `{cluster_name="${n.replace(/["\\]/g, '\\$&')}"}`;
    for (const stat of counters) {
      lines.push(`# TYPE envoy_cluster_${stat} counter`);
      for (const c of this.clusters.values())
        lines.push(`envoy_cluster_${stat}${label(c.name)} ${c.stats[stat]}`);
    }
    for (const g of CLUSTER_GAUGES) {
      lines.push(`# TYPE envoy_cluster_${g} gauge`);
      for (const c of this.clusters.values()) lines.push(`envoy_cluster_${g}${label(c.name)} ${GAUGE[g](c)}`);
    }
    return `${lines.join('\n')}\n`;
  }
}
