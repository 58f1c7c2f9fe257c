// A cluster at run time: its endpoints and the load balancer over the healthy ones.
import type { Cluster, Endpoint } from '../../compile/snapshot.ts';
import { endpointPeer, type PeerInfo } from '../telemetry.ts';

export interface LoadBalancer {
  pick(): Endpoint | undefined;
}

/** Round robin over healthy endpoints; the cursor survives nothing but this snapshot. */
export class RoundRobin implements LoadBalancer {
  private readonly healthy: Endpoint[];
  private next = 0;
  constructor(endpoints: Endpoint[]) {
    this.healthy = endpoints.filter((e) => e.healthy);
  }
  pick(): Endpoint | undefined {
    const n = this.healthy.length;
    if (n === 0) return undefined;
    const e = this.healthy[this.next % n];
    this.next = (this.next + 1) % n;
    return e;
  }
}

export class ClusterRuntime {
  readonly cluster: Cluster;
  readonly lb: LoadBalancer;
  /** Telemetry's view of each endpoint, worked out when the snapshot is applied. */
  private readonly peers: Map<Endpoint, PeerInfo>;

  constructor(cluster: Cluster) {
    this.cluster = cluster;
    this.lb = new RoundRobin(cluster.endpoints);
    this.peers = new Map(cluster.endpoints.map((e) => [e, endpointPeer(e)]));
  }

  peerOf(ep: Endpoint): PeerInfo {
    return this.peers.get(ep) ?? endpointPeer(ep);
  }
}
