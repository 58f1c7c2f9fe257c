// A cluster at run time: its endpoints, each paired with the state that outlives the snapshot, and
// the load balancer over the healthy ones.
import type { Cluster, Endpoint } from '../../compile/snapshot.ts';
import { endpointPeer, type PeerInfo } from '../telemetry.ts';
import { type LoadBalancer, loadBalancer } from './load-balancer.ts';
import { type EndpointState, UpstreamState } from './state.ts';

export class EndpointRuntime {
  readonly endpoint: Endpoint;
  readonly state: EndpointState;
  /** Telemetry's view of the endpoint, worked out when the snapshot is applied. */
  readonly peer: PeerInfo;
  /** Its place in the cluster's endpoint list, for what layers keep per endpoint. */
  readonly index: number;
  constructor(endpoint: Endpoint, state: EndpointState, index: number) {
    this.endpoint = endpoint;
    this.state = state;
    this.index = index;
    this.peer = endpointPeer(endpoint);
  }
}

export class ClusterRuntime {
  readonly cluster: Cluster;
  readonly endpoints: readonly EndpointRuntime[];
  readonly lb: LoadBalancer<EndpointRuntime>;

  constructor(cluster: Cluster, state: UpstreamState) {
    this.cluster = cluster;
    this.endpoints = cluster.endpoints.map(
      (e, i) =>
        new EndpointRuntime(e, state.endpoint(UpstreamState.endpointKey(cluster.name, e.address, e.port)), i),
    );
    this.lb = loadBalancer(
      cluster.lb,
      this.endpoints.filter((e) => e.endpoint.healthy),
      state.cluster(cluster.name),
    );
  }
}
