import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import { escapeLabelValue, formatNumber, processMetrics, Registry } from './metrics.ts';
import { parsePrometheusText } from './parse.ts';

describe('Registry exposition', () => {
  it('renders counters and gauges with HELP and TYPE once per family', () => {
    const r = new Registry();
    const c = r.counter('http_requests_total', 'Requests.', ['method', 'code']);
    c.series(['GET', '200']).inc();
    c.series(['GET', '200']).inc(2);
    c.series(['POST', '500']).inc();
    r.gauge('up', 'Whether the target is up.').series().set(1);
    assert.equal(
      r.render(),
      [
        '# HELP http_requests_total Requests.',
        '# TYPE http_requests_total counter',
        'http_requests_total{method="GET",code="200"} 3',
        'http_requests_total{method="POST",code="500"} 1',
        '# HELP up Whether the target is up.',
        '# TYPE up gauge',
        'up 1',
        '',
      ].join('\n'),
    );
  });

  it('sorts families by name and series by label values, independent of creation order', () => {
    const build = (order: string[]) => {
      const r = new Registry();
      r.gauge('zeta', 'z');
      const g = r.gauge('alpha', 'a', ['k']);
      for (const v of order) g.series([v]).set(1);
      return r.render();
    };
    const text = build(['b', 'a', 'B', 'aa']);
    assert.equal(text, build(['aa', 'B', 'b', 'a']));
    const keys = parsePrometheusText(text)
      .filter((s) => s.name === 'alpha')
      .map((s) => s.labels.k);
    assert.deepEqual(keys, ['B', 'a', 'aa', 'b']);
    assert.ok(text.indexOf('# HELP alpha') < text.indexOf('# HELP zeta'));
  });

  it('escapes backslash, double quote and newline in label values', () => {
    const r = new Registry();
    r.counter('c', 'h', ['v']).series(['a\\b"c\nd']).inc();
    assert.match(r.render(), /^c\{v="a\\\\b\\"c\\nd"\} 1$/m);
    assert.equal(escapeLabelValue('plain'), 'plain');
  });

  it('escapes backslash and newline in HELP but leaves quotes', () => {
    const r = new Registry();
    r.gauge('g', 'say "hi"\\now\nthen');
    assert.match(r.render(), /^# HELP g say "hi"\\\\now\\nthen$/m);
  });

  it('renders histograms with cumulative buckets, +Inf, _sum and _count', () => {
    const r = new Registry();
    const h = r.histogram('latency', 'Latency.', ['route'], [1, 5, 10]);
    const s = h.series(['/a']);
    for (const v of [0.5, 1, 3, 7, 100]) s.observe(v);
    assert.equal(
      r.render(),
      [
        '# HELP latency Latency.',
        '# TYPE latency histogram',
        'latency_bucket{route="/a",le="1"} 2',
        'latency_bucket{route="/a",le="5"} 3',
        'latency_bucket{route="/a",le="10"} 4',
        'latency_bucket{route="/a",le="+Inf"} 5',
        'latency_sum{route="/a"} 111.5',
        'latency_count{route="/a"} 5',
        '',
      ].join('\n'),
    );
  });

  it('renders an unlabelled histogram and counts a value equal to a bound in that bucket', () => {
    const r = new Registry();
    const s = r.histogram('h', 'h', [], [0.5, 2.5]).series();
    s.observe(2.5);
    s.observe(Number.NaN); // dropped
    const samples = parsePrometheusText(r.render());
    assert.deepEqual(
      samples.map((x) => [x.name, x.labels.le, x.value]),
      [
        ['h_bucket', '0.5', 0],
        ['h_bucket', '2.5', 1],
        ['h_bucket', '+Inf', 1],
        ['h_sum', undefined, 2.5],
        ['h_count', undefined, 1],
      ],
    );
  });

  it('exports unlabelled metrics at zero before first use, labelled families as HELP/TYPE only', () => {
    const r = new Registry();
    r.counter('a_total', 'a');
    r.counter('b_total', 'b', ['x']);
    assert.equal(
      r.render(),
      '# HELP a_total a\n# TYPE a_total counter\na_total 0\n# HELP b_total b\n# TYPE b_total counter\n',
    );
  });

  it('formats non-finite values the way Prometheus spells them', () => {
    assert.equal(formatNumber(Number.POSITIVE_INFINITY), '+Inf');
    assert.equal(formatNumber(Number.NEGATIVE_INFINITY), '-Inf');
    assert.equal(formatNumber(Number.NaN), 'NaN');
    assert.equal(formatNumber(0.1), '0.1');
    assert.equal(formatNumber(1e21), '1e+21');
  });

  it('round-trips through parsePrometheusText', () => {
    const r = new Registry();
    const c = r.counter('rt_total', 'help with "quotes"', ['a', 'b']);
    c.series(['x\\y', 'line\nbreak']).inc(4);
    c.series(['', 'q"']).inc(0.25);
    r.gauge('rt_gauge', 'g').series().set(-1.5);
    r.histogram('rt_hist', 'h', ['a'], [1]).series(['z']).observe(2);
    assert.deepEqual(parsePrometheusText(r.render()), [
      { name: 'rt_gauge', labels: {}, value: -1.5 },
      { name: 'rt_hist_bucket', labels: { a: 'z', le: '1' }, value: 0 },
      { name: 'rt_hist_bucket', labels: { a: 'z', le: '+Inf' }, value: 1 },
      { name: 'rt_hist_sum', labels: { a: 'z' }, value: 2 },
      { name: 'rt_hist_count', labels: { a: 'z' }, value: 1 },
      { name: 'rt_total', labels: { a: '', b: 'q"' }, value: 0.25 },
      { name: 'rt_total', labels: { a: 'x\\y', b: 'line\nbreak' }, value: 4 },
    ]);
  });
});

describe('series handles', () => {
  it('returns the same handle for the same label values', () => {
    const c = new Registry().counter('c', 'h', ['a', 'b']);
    const s = c.series(['x', 'y']);
    assert.equal(c.series(['x', 'y']), s);
    assert.notEqual(c.series(['x', 'z']), s);
    assert.notEqual(c.series(['xy', '']), c.series(['x', 'y']));
    assert.equal(c.size, 3);
  });

  it('rejects wrong arity and values containing the key separator', () => {
    const c = new Registry().counter('c', 'h', ['a']);
    c.series(['']);
    assert.throws(() => c.series([]), /expected 1 label values/);
    assert.throws(() => c.series(['a', 'b']), /expected 1 label values/);
    const c2 = new Registry().counter('c2', 'h', ['a', 'b']);
    c2.series(['a', 'b']);
    assert.throws(() => c2.series(['a\u0000b', '']), /U\+0000/);
  });

  it('rejects decreasing or NaN counter increments; gauges go both ways', () => {
    const r = new Registry();
    const s = r.counter('c', 'h').series();
    assert.throws(() => s.inc(-1), RangeError);
    assert.throws(() => s.inc(Number.NaN), RangeError);
    const g = r.gauge('g', 'h').series();
    g.inc(5);
    g.dec(2);
    assert.equal(g.value, 3);
    g.set(-7);
    assert.equal(g.value, -7);
  });

  it('remove() drops a series from the output', () => {
    const r = new Registry();
    const g = r.gauge('g', 'h', ['ep']);
    g.series(['10.0.0.1']).set(1);
    g.series(['10.0.0.2']).set(1);
    assert.equal(g.remove(['10.0.0.1']), true);
    assert.equal(g.remove(['10.0.0.1']), false);
    assert.deepEqual(
      parsePrometheusText(r.render()).map((s) => s.labels.ep),
      ['10.0.0.2'],
    );
  });

  it('allocates nothing on the hot path: 1e6 inc() and observe() on cached series', () => {
    const r = new Registry();
    const counter = r.counter('hot_total', 'h', ['direction', 'service']).series(['inbound', 'reviews']);
    const hist = r.histogram('hot_ms', 'h', ['direction'], [0.5, 1, 5, 10, 25, 50, 100]).series(['inbound']);
    const run = (n: number) => {
      for (let i = 0; i < n; i++) {
        counter.inc();
        hist.observe(i & 63);
      }
    };
    run(200_000); // warm up so the loop runs optimized, as it would in a long-lived proxy
    const allocated = bytesAllocatedDuring(() => run(1_000_000));
    // Any per-call allocation (a boxed number is 12-16 bytes) would show up as >= 12 MB here.
    assert.ok(allocated < 1_000_000, `hot path allocated ~${allocated} bytes over 1e6 calls`);
    assert.equal(counter.value, 1_200_000);
    assert.equal(hist.count, 1_200_000);
  });
});

describe('Registry definitions and collectors', () => {
  it('returns the existing family for an identical definition and throws on a conflicting one', () => {
    const r = new Registry();
    const a = r.counter('x_total', 'h', ['a']);
    assert.equal(r.counter('x_total', 'h', ['a']), a);
    assert.throws(() => r.gauge('x_total', 'h', ['a']), /different definition/);
    assert.throws(() => r.counter('x_total', 'h', ['b']), /different definition/);
    assert.throws(() => r.counter('x_total', 'other', ['a']), /different definition/);
    const h = r.histogram('h', 'h', [], [1, 2]);
    assert.equal(r.histogram('h', 'h', [], [1, 2, Number.POSITIVE_INFINITY]), h);
    assert.throws(() => r.histogram('h', 'h', [], [1, 3]), /different definition/);
  });

  it('validates names, labels and buckets', () => {
    const r = new Registry();
    assert.throws(() => r.counter('bad-name', 'h'), /invalid metric name/);
    assert.throws(() => r.counter('ok', 'h', ['__reserved']), /invalid label name/);
    assert.throws(() => r.counter('ok2', 'h', ['a', 'a']), /duplicate label/);
    assert.throws(() => r.histogram('h1', 'h', ['le']), /reserved/);
    assert.throws(() => r.histogram('h2', 'h', [], [2, 1]), /strictly increasing/);
    assert.throws(() => r.histogram('h3', 'h', [], [1, Number.NaN]), /finite/);
  });

  it('runs collectors before each render and stops after unsubscribe', () => {
    const r = new Registry();
    const g = r.gauge('refreshed', 'h').series();
    let n = 0;
    const stop = r.collect(() => g.set(++n));
    assert.match(r.render(), /^refreshed 1$/m);
    assert.match(r.render(), /^refreshed 2$/m);
    stop();
    assert.match(r.render(), /^refreshed 2$/m);
  });

  it('processMetrics exposes the standard process metrics with plausible values', () => {
    const r = new Registry();
    processMetrics(r);
    processMetrics(r); // idempotent: a second collector must not double-count CPU
    const byName = new Map(parsePrometheusText(r.render()).map((s) => [s.name, s.value]));
    assert.deepEqual(
      [...byName.keys()],
      [
        'nodejs_heap_size_used_bytes',
        'process_cpu_seconds_total',
        'process_resident_memory_bytes',
        'process_start_time_seconds',
      ],
    );
    const cpu = byName.get('process_cpu_seconds_total')!;
    const { user, system } = process.cpuUsage();
    assert.ok(cpu > 0 && cpu <= (user + system) / 1e6 + 1e-9);
    assert.ok(byName.get('process_resident_memory_bytes')! > 1e6);
    assert.ok(byName.get('nodejs_heap_size_used_bytes')! > 1e5);
    const start = byName.get('process_start_time_seconds')!;
    assert.ok(start <= Date.now() / 1000 && start > Date.now() / 1000 - 3600);
    assert.match(r.render(), /^# TYPE process_cpu_seconds_total counter$/m);
  });
});

/** Heap bytes allocated while fn runs: growth of used heap plus whatever GCs reclaimed in between. */
function bytesAllocatedDuring(fn: () => void): number {
  const profiler = new v8.GCProfiler();
  profiler.start();
  const before = v8.getHeapStatistics().used_heap_size;
  fn();
  const after = v8.getHeapStatistics().used_heap_size;
  const { statistics } = profiler.stop();
  let reclaimed = 0;
  for (const gc of statistics) {
    reclaimed += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
  }
  return after - before + reclaimed;
}
