// Load balancers over a cluster's healthy endpoints, one interface, several policies (DestinationRule
// `loadBalancer.simple`). Each is built per snapshot over the endpoints it lists; what must outlive
// the snapshot (round robin's position, requests in flight) is read from the upstream state.
import type { LoadBalancerPolicy } from '../../compile/snapshot.ts';
import type { ClusterState, EndpointState } from './state.ts';
import { unequalWeights, WeightedLeastRequest, WeightedRoundRobin } from './weighted.ts';

export interface Balanced {
  readonly state: EndpointState;
  /** Envoy's load_balancing_weight (weighted.ts); unset, 1. */
  readonly weight?: number;
}

export interface LoadBalancer<E extends Balanced = Balanced> {
  /** An endpoint for the next request, or undefined when there is none to send to. */
  pick(): E | undefined;
}

export class RoundRobin<E extends Balanced> implements LoadBalancer<E> {
  private readonly endpoints: readonly E[];
  private readonly cluster: ClusterState;
  constructor(endpoints: readonly E[], cluster: ClusterState) {
    this.endpoints = endpoints;
    this.cluster = cluster;
  }
  pick(): E | undefined {
    const n = this.endpoints.length;
    if (n === 0) return undefined;
    const i = this.cluster.cursor % n;
    this.cluster.cursor = i + 1;
    return this.endpoints[i];
  }
}

/** Envoy's LEAST_REQUEST with two choices: of two endpoints drawn at random, the one with fewer in flight. */
export class LeastRequest<E extends Balanced> implements LoadBalancer<E> {
  private readonly endpoints: readonly E[];
  private readonly random: () => number;
  constructor(endpoints: readonly E[], random: () => number = Math.random) {
    this.endpoints = endpoints;
    this.random = random;
  }
  pick(): E | undefined {
    const n = this.endpoints.length;
    if (n <= 1) return this.endpoints[0];
    const i = Math.floor(this.random() * n);
    // The second draw skips the first, so two distinct endpoints are compared.
    const j = Math.floor(this.random() * (n - 1));
    const a = this.endpoints[i];
    const b = this.endpoints[j >= i ? j + 1 : j];
    return b.state.active < a.state.active ? b : a;
  }
}

export class RandomPick<E extends Balanced> implements LoadBalancer<E> {
  private readonly endpoints: readonly E[];
  private readonly random: () => number;
  constructor(endpoints: readonly E[], random: () => number = Math.random) {
    this.endpoints = endpoints;
    this.random = random;
  }
  pick(): E | undefined {
    const n = this.endpoints.length;
    return n === 0 ? undefined : this.endpoints[Math.floor(this.random() * n)];
  }
}

type Factory = <E extends Balanced>(healthy: readonly E[], cluster: ClusterState) => LoadBalancer<E>;

/**
 * The policies this proxy balances with; a snapshot asking for another is refused. Endpoints of
 * unequal weights are balanced by weight, as Envoy does, except by RANDOM, which ignores weights.
 */
export const LOAD_BALANCERS: Readonly<Partial<Record<LoadBalancerPolicy['type'], Factory>>> = {
  ROUND_ROBIN: (healthy, cluster) =>
    unequalWeights(healthy) ? new WeightedRoundRobin(healthy) : new RoundRobin(healthy, cluster),
  LEAST_REQUEST: (healthy) =>
    unequalWeights(healthy) ? new WeightedLeastRequest(healthy) : new LeastRequest(healthy),
  RANDOM: (healthy) => new RandomPick(healthy),
};

export function loadBalancer<E extends Balanced>(
  policy: LoadBalancerPolicy,
  healthy: readonly E[],
  cluster: ClusterState,
): LoadBalancer<E> {
  const factory = LOAD_BALANCERS[policy.type];
  if (!factory) throw new Error(`load balancer ${policy.type} is not supported by this proxy`);
  return factory(healthy, cluster);
}
