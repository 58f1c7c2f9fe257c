// A/B of the data plane: this checkout against another one (a worktree of the commit before a
// change), measured in one session with interleaved rounds (A B, B A, A B, ...), so drift in the
// machine's state falls on both sides alike. Each side runs its own bench code and its own proxies.
//
//   git worktree add /tmp/base <commit> && ln -s "$PWD/node_modules" /tmp/base/node_modules
//   node bench/ab.ts --base /tmp/base --rounds 3 --scenario mesh --scenario gateway
//
// Prints the two sides' tables and the ratios after/before of the medians.
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { RunResult } from './dataplane/main.ts';
import { dataPlaneTables } from './dataplane/report.ts';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    scenario: { type: 'string', multiple: true },
    protocol: { type: 'string', multiple: true },
    quick: { type: 'boolean', default: false },
  },
});
if (!values.base) {
  console.error(
    'usage: node bench/ab.ts --base <checkout> [--rounds N] [--scenario S ...] [--protocol P ...]',
  );
  process.exit(64);
}
const sides = { before: path.resolve(values.base), after: path.resolve(import.meta.dirname, '..') };
const rounds = Number(values.rounds);
const quick = values.quick ?? false;
const results: Record<keyof typeof sides, RunResult[]> = { before: [], after: [] };

for (let round = 1; round <= rounds; round++) {
  const order: (keyof typeof sides)[] = round % 2 ? ['before', 'after'] : ['after', 'before'];
  for (const side of order) {
    const { runDataPlane } = (await import(path.join(sides[side], 'bench/dataplane/main.ts'))) as {
      runDataPlane: typeof import('./dataplane/main.ts').runDataPlane;
    };
    const run = await runDataPlane({
      rounds: 1,
      warmupSeconds: quick ? 1 : 10,
      rateSeconds: quick ? 2 : 15,
      maxSeconds: quick ? 2 : 10,
      only: values.scenario ?? [],
      protocols: (values.protocol ?? ['HTTP/1.1', 'HTTP/2']) as ('HTTP/1.1' | 'HTTP/2')[],
      log: (l) => console.log(`ab ${side} round ${round}: ${l}`),
    });
    for (const r of run) results[side].push({ ...r, round });
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Per scenario and protocol, the medians over rounds of what the bar is about. */
function figures(rs: RunResult[]): Map<string, { vcpu: number; p90: number; p99: number; max: number }> {
  const out = new Map<string, { vcpu: number; p90: number; p99: number; max: number }>();
  const keys = [
    ...new Set(rs.filter((r) => r.scenario !== 'direct').map((r) => `${r.protocol} ${r.scenario}`)),
  ];
  for (const key of keys) {
    const mine = rs.filter((r) => `${r.protocol} ${r.scenario}` === key);
    const direct = (r: RunResult) =>
      rs.find((d) => d.scenario === 'direct' && d.protocol === r.protocol && d.round === r.round)!;
    out.set(key, {
      // Per proxy: the mesh path has two, each costs this much on average.
      vcpu: median(mine.map((r) => r.cost.reduce((s, c) => s + c.vcpu, 0) / r.cost.length)),
      p90: median(mine.map((r) => (r.rate.p90 - direct(r).rate.p90) / 1000)),
      p99: median(mine.map((r) => (r.rate.p99 - direct(r).rate.p99) / 1000)),
      max: median(mine.map((r) => r.max.rps)),
    });
  }
  return out;
}

const before = figures(results.before);
const after = figures(results.after);
const rows = [...before.keys()].map((key) => {
  const b = before.get(key)!;
  const a = after.get(key)!;
  const f = (x: number, d = 2) => x.toFixed(d);
  return `| ${key} | ${f(b.vcpu, 3)} → ${f(a.vcpu, 3)} (${f(a.vcpu / b.vcpu)}) | ${f(b.p90)} → ${f(a.p90)} | ${f(b.p99)} → ${f(a.p99)} | ${f(b.max, 0)} → ${f(a.max, 0)} (${f(a.max / b.max)}) |`;
});
console.log(`
## A/B: before ${sides.before} / after ${sides.after}, ${rounds} interleaved round(s)

| path | vCPU per 1000 rps per proxy (after/before) | added p90 ms | added p99 ms | max requests/s (after/before) |
|---|---|---|---|---|
${rows.join('\n')}

### before
${dataPlaneTables(results.before)}

### after
${dataPlaneTables(results.after)}
`);
