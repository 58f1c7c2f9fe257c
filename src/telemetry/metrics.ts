/**
 * Prometheus metrics registry shared by the control plane and the sidecar.
 *
 * The proxy records metrics on every request, so the design splits work into a cold and a hot half:
 * resolving a label-value tuple to a series (`family.series([...])`) happens once per tuple, and the
 * returned handle's `inc` / `set` / `observe` only touch numbers already allocated. Everything that
 * produces strings (escaping, sorting, number formatting) is deferred to `render()`, which runs per scrape.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** Separator for series cache keys. Values containing it are rejected (see MetricFamily.series). */
const SEP = '\u0000';
const NO_LABELS: readonly string[] = Object.freeze([]);
const NO_BUCKETS: readonly number[] = Object.freeze([]);
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** prometheus/client_golang's DefBuckets, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

export class CounterSeries {
  value = 0;
  readonly labelValues: readonly string[];
  constructor(labelValues: readonly string[]) {
    this.labelValues = labelValues;
  }
  inc(n = 1): void {
    // `!(n >= 0)` also rejects NaN: a counter that went NaN would stay NaN forever.
    if (!(n >= 0)) throw new RangeError(`counter increment must be >= 0, got ${n}`);
    this.value += n;
  }
}

export class GaugeSeries {
  value = 0;
  readonly labelValues: readonly string[];
  constructor(labelValues: readonly string[]) {
    this.labelValues = labelValues;
  }
  set(v: number): void {
    this.value = v;
  }
  inc(n = 1): void {
    this.value += n;
  }
  dec(n = 1): void {
    this.value -= n;
  }
}

export class HistogramSeries {
  /** Upper bounds, shared by every series of the family; +Inf is implicit. */
  readonly bounds: Float64Array;
  /** Non-cumulative per-bucket counts; index bounds.length is the +Inf overflow. Cumulated at render. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly labelValues: readonly string[];
  constructor(labelValues: readonly string[], bounds: Float64Array) {
    this.labelValues = labelValues;
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(v: number): void {
    // NaN would poison _sum for the life of the process; drop it instead.
    if (Number.isNaN(v)) return;
    // Linear scan: bucket lists are ~10-20 long and most observations land early, which beats
    // a binary search's unpredictable branches at this size.
    const bounds = this.bounds;
    const n = bounds.length;
    let i = 0;
    while (i < n && v > bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

export type AnySeries = CounterSeries | GaugeSeries | HistogramSeries;

/** One metric name with its label schema and the series created so far. */
export class MetricFamily<S extends AnySeries> {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly labelNames: readonly string[];
  /** Histogram upper bounds (without +Inf); empty for counters and gauges. */
  readonly buckets: readonly number[];
  private readonly make: (labelValues: readonly string[]) => S;
  private readonly byKey = new Map<string, S>();
  /** Render order, rebuilt only after a series is added or removed. */
  private sorted: S[] | null = null;

  constructor(
    name: string,
    help: string,
    type: MetricType,
    labelNames: readonly string[],
    buckets: readonly number[],
    make: (labelValues: readonly string[]) => S,
  ) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.labelNames = Object.freeze([...labelNames]);
    this.buckets = Object.freeze([...buckets]);
    this.make = make;
    // Unlabelled metrics exist from the start, so a scrape shows 0 rather than nothing.
    if (labelNames.length === 0) this.series();
  }

  /**
   * The series for one label-value tuple (in labelNames order), created on first use and cached.
   * Call this once per tuple and keep the handle; the lookup builds a key string, the handle does not.
   */
  series(labelValues: readonly string[] = NO_LABELS): S {
    if (labelValues.length !== this.labelNames.length) {
      throw new Error(
        `${this.name}: expected ${this.labelNames.length} label values (${this.labelNames.join(', ')}), got ${labelValues.length}`,
      );
    }
    const key = labelValues.join(SEP);
    const hit = this.byKey.get(key);
    if (hit !== undefined) return hit;
    // Content checks live on the miss path only, and that is enough to keep keys unambiguous: with the
    // arity fixed, a tuple containing SEP has more SEPs in its key than any cached key, so it never hits.
    for (const v of labelValues) {
      if (typeof v !== 'string') throw new TypeError(`${this.name}: label values must be strings`);
      if (v.includes(SEP)) throw new Error(`${this.name}: label value contains U+0000`);
    }
    const s = this.make(Object.freeze([...labelValues]));
    this.byKey.set(key, s);
    this.sorted = null;
    return s;
  }

  /** Drops a series (e.g. for an endpoint that went away). Handles already held keep working but are no longer exported. */
  remove(labelValues: readonly string[]): boolean {
    const removed = this.byKey.delete(labelValues.join(SEP));
    if (removed) this.sorted = null;
    return removed;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Series in deterministic order: by label values, compared code unit by code unit. */
  all(): readonly S[] {
    if (this.sorted === null) {
      // SEP sorts below every other character, so key order is tuple order.
      const keys = [...this.byKey.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      this.sorted = keys.map((k) => this.byKey.get(k)!);
    }
    return this.sorted;
  }
}

export type Counter = MetricFamily<CounterSeries>;
export type Gauge = MetricFamily<GaugeSeries>;
export type Histogram = MetricFamily<HistogramSeries>;

export class Registry {
  private readonly families = new Map<string, MetricFamily<AnySeries>>();
  private readonly collectors = new Set<() => void>();

  counter(name: string, help: string, labelNames: readonly string[] = NO_LABELS): Counter {
    return this.register(name, help, 'counter', labelNames, NO_BUCKETS, (lv) => new CounterSeries(lv));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = NO_LABELS): Gauge {
    return this.register(name, help, 'gauge', labelNames, NO_BUCKETS, (lv) => new GaugeSeries(lv));
  }

  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = NO_LABELS,
    buckets: readonly number[] = DEFAULT_BUCKETS,
  ): Histogram {
    if (labelNames.includes('le')) throw new Error(`${name}: "le" is reserved for histogram buckets`);
    const upper = checkBuckets(name, buckets);
    const bounds = new Float64Array(upper);
    return this.register(name, help, 'histogram', labelNames, upper, (lv) => new HistogramSeries(lv, bounds));
  }

  /**
   * Registers a callback run at the start of every render(), so collectors (process stats, pool sizes)
   * refresh gauges only when someone scrapes. Returns a function that unregisters it.
   */
  collect(cb: () => void): () => void {
    this.collectors.add(cb);
    return () => {
      this.collectors.delete(cb);
    };
  }

  /** Registered family by name, if any. */
  get(name: string): MetricFamily<AnySeries> | undefined {
    return this.families.get(name);
  }

  /** Text exposition format 0.0.4: families sorted by name, series by label values. */
  render(): string {
    for (const cb of this.collectors) cb();
    const names = [...this.families.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const out: string[] = [];
    for (const name of names) renderFamily(this.families.get(name)!, out);
    return out.join('');
  }

  /**
   * Re-registering an identical definition returns the existing family, so independent modules (and
   * both planes in one process) can declare the metrics they use without coordinating who goes first.
   */
  private register<S extends AnySeries>(
    name: string,
    help: string,
    type: MetricType,
    labelNames: readonly string[],
    buckets: readonly number[],
    make: (lv: readonly string[]) => S,
  ): MetricFamily<S> {
    const existing = this.families.get(name);
    if (existing !== undefined) {
      if (
        existing.type !== type ||
        existing.help !== help ||
        !sameList(existing.labelNames, labelNames) ||
        !sameList(existing.buckets, buckets)
      ) {
        throw new Error(`metric ${name} is already registered with a different definition`);
      }
      return existing as unknown as MetricFamily<S>;
    }
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name: ${JSON.stringify(name)}`);
    const seen = new Set<string>();
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || l.startsWith('__'))
        throw new Error(`${name}: invalid label name ${JSON.stringify(l)}`);
      if (seen.has(l)) throw new Error(`${name}: duplicate label name ${l}`);
      seen.add(l);
    }
    const family = new MetricFamily(name, help, type, labelNames, buckets, make);
    this.families.set(name, family as unknown as MetricFamily<AnySeries>);
    return family;
  }
}

function checkBuckets(name: string, buckets: readonly number[]): number[] {
  // +Inf is always emitted; accept it in the list for callers who copy bucket lists from elsewhere.
  const upper = buckets.at(-1) === Number.POSITIVE_INFINITY ? buckets.slice(0, -1) : [...buckets];
  for (let i = 0; i < upper.length; i++) {
    if (!Number.isFinite(upper[i])) throw new Error(`${name}: bucket bounds must be finite`);
    if (i > 0 && !(upper[i] > upper[i - 1])) throw new Error(`${name}: buckets must be strictly increasing`);
  }
  return upper;
}

function sameList(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function renderFamily(f: MetricFamily<AnySeries>, out: string[]): void {
  const { name } = f;
  out.push(`# HELP ${name} ${escapeHelp(f.help)}\n# TYPE ${name} ${f.type}\n`);
  for (const s of f.all()) {
    const labels = labelPairs(f.labelNames, s.labelValues);
    if (s instanceof HistogramSeries) {
      const prefix = labels === '' ? '{' : `{${labels},`;
      let cumulative = 0;
      for (let i = 0; i < s.bounds.length; i++) {
        cumulative += s.counts[i];
        out.push(`${name}_bucket${prefix}le="${formatNumber(s.bounds[i])}"} ${formatNumber(cumulative)}\n`);
      }
      // The +Inf bucket equals _count by definition; use count itself so the two can never disagree.
      out.push(`${name}_bucket${prefix}le="+Inf"} ${formatNumber(s.count)}\n`);
      const braces = labels === '' ? '' : `{${labels}}`;
      out.push(`${name}_sum${braces} ${formatNumber(s.sum)}\n`);
      out.push(`${name}_count${braces} ${formatNumber(s.count)}\n`);
    } else {
      out.push(`${name}${labels === '' ? '' : `{${labels}}`} ${formatNumber(s.value)}\n`);
    }
  }
}

function labelPairs(names: readonly string[], values: readonly string[]): string {
  let text = '';
  for (let i = 0; i < names.length; i++) {
    text += `${i === 0 ? '' : ','}${names[i]}="${escapeLabelValue(values[i])}"`;
  }
  return text;
}

/** Label values escape backslash, double quote and line feed (format 0.0.4). */
export function escapeLabelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`)) : v;
}

/** HELP text escapes only backslash and line feed; quotes stay literal. */
function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

/** Go's ParseFloat (what Prometheus uses) reads JS number strings as-is, except the non-finite spellings. */
export function formatNumber(v: number): string {
  if (Number.isFinite(v)) return String(v);
  return v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN';
}

/**
 * Standard process metrics (names as in the Prometheus client libraries), refreshed at scrape time.
 * Safe to call more than once on a registry: the collector sets absolute values, so a second
 * registration cannot double-count.
 */
export function processMetrics(registry: Registry): () => void {
  const rss = registry.gauge('process_resident_memory_bytes', 'Resident memory size in bytes.').series();
  const cpu = registry
    .counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.')
    .series();
  const start = registry
    .gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.')
    .series();
  const heap = registry
    .gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.')
    .series();
  // performance.timeOrigin is when this process started, with sub-millisecond resolution.
  start.set(performance.timeOrigin / 1000);
  return registry.collect(() => {
    const mem = process.memoryUsage();
    rss.set(mem.rss);
    heap.set(mem.heapUsed);
    const { user, system } = process.cpuUsage();
    const seconds = (user + system) / 1e6;
    // Counters only go up, so move to the absolute value by the difference.
    if (seconds > cpu.value) cpu.inc(seconds - cpu.value);
  });
}
