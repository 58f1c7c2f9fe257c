// Locality-aware load balancing (DestinationRule `localityLbSetting`), as Istio configures Envoy:
// Istio turns the setting into EDS priorities (failover) or locality weights (distribute) relative
// to the proxy's own locality, and Envoy spreads the load over priorities by their health. Here both
// halves run in the proxy: `priorityLevels` is Istio's part, `LocalityBalancer` Envoy's.
import type { Balanced, LoadBalancer } from './load-balancer.ts';

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subzone: string;
}

export const REGION_LABEL = 'topology.kubernetes.io/region';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';
export const SUBZONE_LABEL = 'topology.istio.io/subzone';

/** The locality a workload's labels give; a part not labelled is ''. */
export function localityOf(labels?: Readonly<Record<string, string>>): Locality {
  return {
    region: labels?.[REGION_LABEL] ?? '',
    zone: labels?.[ZONE_LABEL] ?? '',
    subzone: labels?.[SUBZONE_LABEL] ?? '',
  };
}

/** `region/zone/subzone`, the form settings name localities in. */
export function localityString(l: Locality): string {
  return `${l.region}/${l.zone}/${l.subzone}`;
}

/** Istio's match of a locality with `region[/zone[/subzone]]`: a part `*` or not given matches any. */
export function localityMatches(l: Locality, pattern: string): boolean {
  const [region, zone = '*', subzone = '*'] = pattern.split('/');
  return (
    (region === '*' || region === l.region) &&
    (zone === '*' || zone === l.zone) &&
    (subzone === '*' || subzone === l.subzone)
  );
}

/** Istio's `localityLbSetting`, once enabled (Istio enables it when the rule has `outlierDetection`). */
export interface LocalitySetting {
  /** The first entry whose `from` matches the proxy weights localities by `to`; not with failover. */
  distribute?: readonly { from: string; to: Readonly<Record<string, number>> }[];
  /** Regions only: from the proxy's region, `to` is the next after it. */
  failover?: readonly { from: string; to: string }[];
  /** Labels (or `label=value`) endpoints are ranked by, in order, matching the proxy's. */
  failoverPriority?: readonly string[];
}

export interface Localized extends Balanced {
  readonly locality: Locality;
  readonly labels?: Readonly<Record<string, string>>;
}

/** The proxy doing the balancing. */
export interface Self {
  readonly locality: Locality;
  readonly labels?: Readonly<Record<string, string>>;
}

/** Endpoints balanced together, and their share of the priority (relative to the other groups). */
export interface LocalityGroup<E> {
  readonly endpoints: readonly E[];
  readonly weight: number;
}

/** A priority level: one group, or with `distribute` one group per locality. */
export type Priority<E> = readonly LocalityGroup<E>[];

// Locality labels are read from the locality, which Istio derives from them (and from the node).
function label(of: Self | Localized, key: string): string | undefined {
  if (key === REGION_LABEL) return of.locality.region;
  if (key === ZONE_LABEL) return of.locality.zone;
  if (key === SUBZONE_LABEL) return of.locality.subzone;
  return of.labels?.[key];
}

/** Istio's failoverPriority: 0 when every label matches the proxy, one more per label from the first mismatch. */
function labelRank(self: Self, e: Localized, keys: readonly string[]): number {
  for (let i = 0; i < keys.length; i++) {
    const eq = keys[i].indexOf('=');
    const key = eq < 0 ? keys[i] : keys[i].slice(0, eq);
    const wanted = eq < 0 ? label(self, key) : keys[i].slice(eq + 1);
    if (label(e, key) !== wanted) return keys.length - i;
  }
  return 0;
}

/**
 * Istio's locality priority: 0 same subzone, 1 same zone, 2 same region, 3 elsewhere; with a failover
 * entry from the proxy's region, 3 is its `to` region alone and 4 the rest.
 */
function localityRank(self: Self, e: Localized, failover: LocalitySetting['failover']): number {
  const s = self.locality;
  const l = e.locality;
  if (s.region === l.region) return s.zone !== l.zone ? 2 : s.subzone !== l.subzone ? 1 : 0;
  const entry = failover?.find((f) => f.from === s.region);
  return entry && entry.to !== l.region ? 4 : 3;
}

function distributed<E extends Localized>(
  endpoints: readonly E[],
  to: Readonly<Record<string, number>>,
): Priority<E> {
  const byLocality = Map.groupBy(endpoints, (e) => localityString(e.locality));
  const groups: LocalityGroup<E>[] = [];
  // A locality takes the weight of the first `to` matching it; one pattern matching several
  // localities shares its weight among them by their endpoint counts, as Istio does.
  for (const [pattern, weight] of Object.entries(to)) {
    const matched = [...byLocality].filter(([, eps]) => localityMatches(eps[0].locality, pattern));
    const count = matched.reduce((n, [, eps]) => n + eps.length, 0);
    for (const [name, eps] of matched) {
      byLocality.delete(name);
      if (weight > 0) groups.push({ endpoints: eps, weight: (weight * eps.length) / count });
    }
  }
  // Localities no entry names get no traffic.
  return groups;
}

/**
 * The priority levels Istio would give `endpoints` for this proxy, best first, none empty. With
 * `distribute` (and an entry for the proxy's locality) one level of weighted localities; otherwise
 * levels by failoverPriority labels, then by locality (unless failoverPriority is given alone).
 */
export function priorityLevels<E extends Localized>(
  self: Self,
  endpoints: readonly E[],
  setting: LocalitySetting,
): Priority<E>[] {
  if (setting.distribute) {
    const rule = setting.distribute.find((d) => localityMatches(self.locality, d.from));
    const level = rule ? distributed(endpoints, rule.to) : [{ endpoints, weight: 1 }];
    return level.length > 0 && endpoints.length > 0 ? [level] : [];
  }
  const labels = setting.failoverPriority ?? [];
  const byLocality = labels.length === 0 || (setting.failover?.length ?? 0) > 0;
  // Istio keeps label ranks apart from locality ranks (0–4) by multiplying them by 5.
  const rank = (e: E) =>
    labelRank(self, e, labels) * 5 + (byLocality ? localityRank(self, e, setting.failover) : 0);
  const byRank = Map.groupBy(endpoints, rank);
  return [...byRank.keys()].sort((a, b) => a - b).map((r) => [{ endpoints: byRank.get(r)!, weight: 1 }]);
}

/** Envoy's default: a level counts as fully healthy down to 1/1.4 ≈ 71% healthy. */
export const OVERPROVISIONING = 1.4;

/**
 * Envoy's priority load: each level takes min(1, healthy fraction × 1.4) of what the levels before
 * it left; when the levels' health adds up to less than 1 the loads are scaled up to sum to 1.
 * All zero when nothing is healthy.
 */
export function priorityLoad(healthy: readonly number[], overprovisioning = OVERPROVISIONING): number[] {
  const health = healthy.map((h) => Math.min(1, h * overprovisioning));
  const total = Math.min(
    1,
    health.reduce((a, b) => a + b, 0),
  );
  if (total === 0) return health.map(() => 0);
  let left = 1;
  return health.map((h) => {
    const load = Math.min(left, h / total);
    left -= load;
    return load;
  });
}

export interface LocalityBalancerOptions<E extends Localized> {
  self: Self;
  endpoints: readonly E[];
  setting: LocalitySetting;
  /** Read by `refresh`, so outlier ejection can flip it without a rebuild. */
  healthy: (e: E) => boolean;
  /** The cluster's own policy, over the endpoints of the level and locality chosen. */
  inner: (endpoints: readonly E[]) => LoadBalancer<E>;
  /**
   * Envoy's healthy_panic_threshold in percent (Istio: outlierDetection.minHealthPercent): a level
   * with fewer healthy balances over all its endpoints. 0: never; nothing healthy then picks none.
   */
  panicThreshold?: number;
  random?: () => number;
}

interface Level<E extends Balanced> {
  readonly groups: Priority<E>;
  /** Over all the level's endpoints, healthy or not, for panic. */
  readonly all: LoadBalancer<E>;
  readonly size: number;
}

interface Choice<E extends Balanced> {
  /** Cumulative share of each group, by its weight and health (Envoy's effective locality weight). */
  readonly cumulative: Float64Array;
  readonly balancers: readonly LoadBalancer<E>[];
  readonly panic: boolean;
}

/**
 * Picks a priority level by Envoy's priority load, then within it a locality by weight and health,
 * then an endpoint by the inner policy. Health is read when `refresh` is called, not on every pick:
 * call it whenever the `healthy` predicate may answer differently (an ejection or its end).
 */
export class LocalityBalancer<E extends Localized> implements LoadBalancer<E> {
  private readonly levels: readonly Level<E>[];
  private readonly options: LocalityBalancerOptions<E>;
  private readonly random: () => number;
  private cumulativeLoad = new Float64Array(0);
  private choices: Choice<E>[] = [];

  constructor(options: LocalityBalancerOptions<E>) {
    this.options = options;
    this.random = options.random ?? Math.random;
    this.levels = priorityLevels(options.self, options.endpoints, options.setting).map((groups) => {
      const all = groups.flatMap((g) => g.endpoints);
      return { groups, all: options.inner(all), size: all.length };
    });
    this.refresh();
  }

  refresh(): void {
    const { healthy, inner, panicThreshold = 50 } = this.options;
    const fractions: number[] = [];
    this.choices = this.levels.map((level) => {
      const up = level.groups.map((g) => g.endpoints.filter(healthy));
      const count = up.reduce((n, eps) => n + eps.length, 0);
      fractions.push(count / level.size);
      const cumulative = new Float64Array(level.groups.length);
      let sum = 0;
      level.groups.forEach((g, i) => {
        sum += g.weight * Math.min(1, (OVERPROVISIONING * up[i].length) / g.endpoints.length);
        cumulative[i] = sum;
      });
      return {
        cumulative,
        balancers: up.map((eps) => inner(eps)),
        panic: (count * 100) / level.size < panicThreshold,
      };
    });
    let loads = priorityLoad(fractions);
    // Envoy's total panic: with every level in panic, load follows endpoint counts, healthy or not.
    if (this.choices.length > 0 && this.choices.every((c) => c.panic)) {
      const total = this.levels.reduce((n, l) => n + l.size, 0);
      loads = this.levels.map((l) => l.size / total);
    }
    this.cumulativeLoad = new Float64Array(loads.length);
    let sum = 0;
    loads.forEach((load, i) => {
      sum += load;
      this.cumulativeLoad[i] = sum;
    });
  }

  pick(): E | undefined {
    const loads = this.cumulativeLoad;
    const n = loads.length;
    if (n === 0 || loads[n - 1] === 0) return undefined;
    const r = this.random() * loads[n - 1];
    let i = 0;
    while (i < n - 1 && r >= loads[i]) i++;
    const choice = this.choices[i];
    if (choice.panic) return this.levels[i].all.pick();
    const weights = choice.cumulative;
    const g = weights.length;
    const w = this.random() * weights[g - 1];
    let j = 0;
    while (j < g - 1 && w >= weights[j]) j++;
    return choice.balancers[j].pick();
  }
}
