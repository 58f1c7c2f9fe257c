// Endpoint weights (ServiceEntry `endpoints[].weight`, Envoy's load_balancing_weight), as Envoy
// balances with them once the weights of a cluster's endpoints differ: ROUND_ROBIN becomes a weighted
// round robin and LEAST_REQUEST a weighted least request, both on an earliest-deadline-first schedule.
// An endpoint of weight w is due every 1/w; the earliest due is picked and rescheduled. Least request
// divides the weight by (active requests + 1) when the endpoint is rescheduled (Envoy's default
// active_request_bias of 1), so a busy endpoint is picked less and less often, never not at all.
import type { EndpointState } from './state.ts';

/** What these balancers read of an endpoint (load-balancer.ts' Balanced is one). */
interface Balanced {
  readonly state: EndpointState;
  readonly weight?: number;
}

/** An endpoint's weight: an unset or zero weight counts as 1, as Envoy's does. */
export function weightOf(e: Balanced): number {
  return e.weight && e.weight > 0 ? e.weight : 1;
}

/** Do the endpoints' weights differ? Equal weights balance exactly as no weights do. */
export function unequalWeights(endpoints: readonly Balanced[]): boolean {
  const first = endpoints[0] ? weightOf(endpoints[0]) : 1;
  return endpoints.some((e) => weightOf(e) !== first);
}

interface Entry<E> {
  deadline: number;
  /** Insertion order, so equal deadlines go first in, first out (a stable schedule). */
  order: number;
  endpoint: E;
}

/** A binary min-heap of endpoints by deadline: a pick costs O(log n), not a scan. */
class EdfSchedule<E extends Balanced> {
  private readonly heap: Entry<E>[] = [];
  private now = 0;
  private order = 0;

  add(endpoint: E, weight: number): void {
    this.push({ deadline: this.now + 1 / weight, order: this.order++, endpoint });
  }

  /** The endpoint due first, rescheduled with `weight(it)`. */
  next(weight: (e: E) => number): E | undefined {
    const top = this.heap[0];
    if (!top) return undefined;
    this.now = top.deadline;
    this.pop();
    this.add(top.endpoint, weight(top.endpoint));
    return top.endpoint;
  }

  private before(a: Entry<E>, b: Entry<E>): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.order < b.order);
  }

  private push(entry: Entry<E>): void {
    const h = this.heap;
    h.push(entry);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < h.length && this.before(h[l], h[min])) min = l;
      if (r < h.length && this.before(h[r], h[min])) min = r;
      if (min === i) return;
      [h[i], h[min]] = [h[min], h[i]];
      i = min;
    }
  }
}

/**
 * Weighted round robin: over any window, each endpoint gets its share of picks, spread out rather
 * than in bursts. Envoy starts the schedule at a random point so proxies do not move in step.
 */
export class WeightedRoundRobin<E extends Balanced> {
  private readonly schedule = new EdfSchedule<E>();
  constructor(endpoints: readonly E[], random: () => number = Math.random) {
    for (const e of endpoints) this.schedule.add(e, weightOf(e));
    const skip = endpoints.length > 0 ? Math.floor(random() * endpoints.length) : 0;
    for (let i = 0; i < skip; i++) this.schedule.next(weightOf);
  }
  pick(): E | undefined {
    return this.schedule.next(weightOf);
  }
}

/** Weighted least request: the schedule's weights shrink with the requests an endpoint has in flight. */
export class WeightedLeastRequest<E extends Balanced> {
  private readonly schedule = new EdfSchedule<E>();
  constructor(endpoints: readonly E[]) {
    for (const e of endpoints) this.schedule.add(e, effectiveWeight(e));
  }
  pick(): E | undefined {
    return this.schedule.next(effectiveWeight);
  }
}

/** Envoy's weight / (active_requests + 1)^active_request_bias, with its default bias 1. */
function effectiveWeight(e: Balanced): number {
  return weightOf(e) / (e.state.active + 1);
}
