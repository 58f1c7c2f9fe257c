// Upstream state that outlives a snapshot. A push rebuilds every runtime structure, but what the
// proxy has learnt about its upstreams (requests in flight, the load balancer's position; later
// ejections and breaker counters) belongs to the endpoint, not to the snapshot that listed it. It is
// kept across swaps, keyed like the pooled connections (cluster and address), and dropped when a
// snapshot no longer lists it.

/** One endpoint as a member of one cluster (Istio's subsets are clusters of their own). */
export class EndpointState {
  readonly key: string;
  /** Requests dispatched to it and not yet over. */
  active = 0;
  constructor(key: string) {
    this.key = key;
  }
}

export class ClusterState {
  readonly name: string;
  /** Where round robin goes next. */
  cursor = 0;
  constructor(name: string) {
    this.name = name;
  }
}

export class UpstreamState {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly clusters = new Map<string, ClusterState>();

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
      s = new ClusterState(name);
      this.clusters.set(name, s);
    }
    return s;
  }

  /** After a swap: forget what the new snapshot no longer has. */
  retain(endpoints: ReadonlySet<string>, clusters: ReadonlySet<string>): void {
    for (const key of this.endpoints.keys()) if (!endpoints.has(key)) this.endpoints.delete(key);
    for (const name of this.clusters.keys()) if (!clusters.has(name)) this.clusters.delete(name);
  }

  has(key: string): boolean {
    return this.endpoints.has(key);
  }
}
