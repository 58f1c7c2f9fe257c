// The data-plane results as markdown tables: medians over rounds with their range, latency added
// over the direct path measured in the same round, throughput as a ratio to nginx and to direct.
import type { RunResult } from './main.ts';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** `median [min–max]`, or just the value when there was one round. */
function spread(xs: number[], digits: number): string {
  const f = (x: number) => x.toFixed(digits);
  if (xs.length === 1) return f(xs[0]);
  return `${f(median(xs))} [${f(Math.min(...xs))}–${f(Math.max(...xs))}]`;
}

const ms = (us: number) => us / 1000;

/** A scenario's baselines: `grpc-*` against grpc-direct and grpc-nginx, `tcp-*` likewise, the rest direct and nginx. */
export function baselines(scenario: string): { direct: string; nginx: string } {
  const family = /^(grpc|tcp)-/.exec(scenario)?.[0] ?? '';
  return { direct: `${family}direct`, nginx: `${family}nginx` };
}

export function dataPlaneTables(results: RunResult[]): string {
  const protocols = [...new Set(results.map((r) => r.protocol))];
  const scenarios = [...new Set(results.map((r) => r.scenario))];
  const rounds = [...new Set(results.map((r) => r.round))];
  const find = (s: string, p: string, round: number) =>
    results.find((r) => r.scenario === s && r.protocol === p && r.round === round);

  const latency: string[] = [
    '### Istio method: 1000 requests/s, 1 KB responses, 16 connections',
    '',
    'Latency in ms, median of rounds [min–max]; "added" is the scenario minus direct in the same round',
    '(gRPC and TCP scenarios: minus grpc-direct, tcp-direct). TCP: one round trip of 1 KB echoed.',
    'CPU is vCPU per 1000 requests/s of each proxy process; RSS in MiB after the run.',
    '',
    '| protocol | scenario | p50 | p90 | p99 | added p50 | added p90 | added p99 | proxy vCPU | proxy RSS MiB | failed |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const throughput: string[] = [
    '### Maximum throughput (closed loop, 16 connections; HTTP/2: 10 streams each)',
    '',
    '| protocol | scenario | requests/s (TCP: round trips/s) | ratio to nginx | ratio to direct | failed |',
    '|---|---|---|---|---|---|',
  ];
  for (const p of protocols) {
    for (const s of scenarios) {
      const runs = rounds.map((r) => find(s, p, r)).filter((r) => r !== undefined);
      if (!runs.length) continue; // gRPC runs on HTTP/2 only, TCP scenarios on TCP
      const base = baselines(s);
      const added = (q: 'p50' | 'p90' | 'p99') =>
        runs.map((r) => ms(r.rate[q] - (find(base.direct, p, r.round)?.rate[q] ?? Number.NaN)));
      const names = runs[0]?.cost.map((c) => c.name) ?? [];
      const perProxy = (f: (c: RunResult['cost'][number]) => number, digits: number) =>
        names
          .map(
            (n) =>
              `${n} ${spread(
                runs.map((r) => f(r.cost.find((c) => c.name === n)!)),
                digits,
              )}`,
          )
          .join('<br>') || '—';
      const failed = runs.reduce((a, r) => a + r.rate.failed, 0);
      latency.push(
        `| ${p} | ${s} | ${spread(
          runs.map((r) => ms(r.rate.p50)),
          3,
        )} | ${spread(
          runs.map((r) => ms(r.rate.p90)),
          3,
        )} | ${spread(
          runs.map((r) => ms(r.rate.p99)),
          3,
        )} | ` +
          (s === base.direct
            ? '— | — | — | '
            : `${spread(added('p50'), 3)} | ${spread(added('p90'), 3)} | ${spread(added('p99'), 3)} | `) +
          `${perProxy((c) => c.vcpu, 3)} | ${perProxy((c) => c.rssMiB, 1)} | ${failed} |`,
      );
      const ratio = (base: string) =>
        runs.map((r) => r.max.rps / (find(base, p, r.round)?.max.rps ?? Number.NaN));
      throughput.push(
        `| ${p} | ${s} | ${spread(
          runs.map((r) => r.max.rps),
          0,
        )} | ${s === base.nginx ? '1' : spread(ratio(base.nginx), 2)} | ${s === base.direct ? '1' : spread(ratio(base.direct), 2)} | ${runs.reduce((a, r) => a + r.max.failed, 0)} |`,
      );
    }
  }
  return [
    latency,
    throughput,
    policyCost(results, protocols, rounds),
    resilienceCost(results, protocols, rounds),
  ]
    .filter((t) => t.length > 0)
    .map((t) => t.join('\n'))
    .join('\n\n');
}

/**
 * What retries (Istio's default policy) and outlier detection cost the client sidecar on the mesh
 * path, against the same route without them in the same round: vCPU per 1000 requests/s and p50/p99
 * latency as ratios. Empty when either did not run.
 */
function resilienceCost(results: RunResult[], protocols: string[], rounds: number[]): string[] {
  const run = (s: string, p: string, round: number) =>
    results.find((r) => r.scenario === s && r.protocol === p && r.round === round);
  const rows: string[] = [];
  for (const p of protocols) {
    const pairs = rounds
      .map((round) => [run('mesh-plain', p, round), run('mesh-resilient', p, round)] as const)
      .filter((x): x is readonly [RunResult, RunResult] => x[0] !== undefined && x[1] !== undefined);
    if (!pairs.length) continue;
    // The client sidecar is the first proxy of both scenarios: it runs the retry and outlier layers.
    const vcpu = pairs.map(([a, b]) => b.cost[0].vcpu / a.cost[0].vcpu);
    const p50 = pairs.map(([a, b]) => b.rate.p50 / a.rate.p50);
    const p99 = pairs.map(([a, b]) => b.rate.p99 / a.rate.p99);
    rows.push(`| ${p} | ${spread(vcpu, 3)} | ${spread(p50, 3)} | ${spread(p99, 3)} |`);
  }
  if (!rows.length) return [];
  return [
    "### Resilience cost: Istio's default retry policy and outlier detection",
    '',
    'mesh-resilient over mesh-plain (the same upstream, a route without retries and no outlier',
    'detection), in the same round: client sidecar vCPU per 1000 requests/s, and latency at 1000 rps.',
    '',
    '| protocol | client sidecar vCPU ratio | p50 ratio | p99 ratio |',
    '|---|---|---|---|',
    ...rows,
  ];
}

/**
 * What the guarded server sidecar (a JWT rule, 10 ALLOW rules) spends over the plain one, both on the
 * mesh path with the same requests (token included) in the same round: vCPU per 1000 requests/s and
 * maximum throughput as ratios. Empty when either did not run.
 */
function policyCost(results: RunResult[], protocols: string[], rounds: number[]): string[] {
  const run = (s: string, p: string, round: number) =>
    results.find((r) => r.scenario === s && r.protocol === p && r.round === round);
  const rows: string[] = [];
  for (const p of protocols) {
    const pairs = rounds
      .map((round) => [run('mesh-token', p, round), run('mesh-policy', p, round)] as const)
      .filter((x): x is readonly [RunResult, RunResult] => x[0] !== undefined && x[1] !== undefined);
    if (!pairs.length) continue;
    // The server sidecar is the second proxy of both scenarios.
    const vcpu = pairs.map(([plain, guarded]) => guarded.cost[1].vcpu / plain.cost[1].vcpu);
    const max = pairs.map(([plain, guarded]) => guarded.max.rps / plain.max.rps);
    rows.push(`| ${p} | ${spread(vcpu, 3)} | ${spread(max, 3)} |`);
  }
  if (!rows.length) return [];
  return [
    '### Authorization cost: server sidecar with a JWT rule and 10 ALLOW rules',
    '',
    'mesh-policy over mesh-token (the same requests, token included, to a sidecar without policy), in',
    'the same round: server sidecar vCPU per 1000 requests/s (1 = free), and maximum throughput.',
    '',
    '| protocol | server sidecar vCPU ratio | max throughput ratio |',
    '|---|---|---|',
    ...rows,
  ];
}
