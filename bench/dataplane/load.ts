// The load generators: h2load (nghttp2) for fixed-rate runs with per-request latencies, HTTP/1.1 and
// HTTP/2 alike, and for HTTP/2 max throughput; wrk for HTTP/1.1 max throughput.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Target {
  url: string;
  /** Sent as Host / :authority, e.g. the mesh service the client sidecar routes by. */
  authority?: string;
  /** More request headers, e.g. a JWT. */
  headers?: Record<string, string>;
  /** A file sent as each request's body (POST), e.g. a framed gRPC message. */
  body?: string;
  h2: boolean;
}

function headerFlags(t: Target): string[] {
  return Object.entries(t.headers ?? {}).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
}

export interface RateResult {
  requests: number;
  /** Non-2xx answers and errors. */
  failed: number;
  rps: number;
  /** Microseconds, from the request's first byte to the response's last. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** h2load pinned to `cpu` for `seconds` against the target; its summary on stdout. */
async function h2load(t: Target, cpu: number, seconds: number, args: string[]): Promise<string> {
  const protocol = t.h2 ? [] : ['--h1'];
  const authority = t.authority ? ['-H', `:authority: ${t.authority}`] : [];
  authority.push(...headerFlags(t));
  if (t.body) authority.push('-d', t.body);
  const { stdout } = await run(
    'taskset',
    ['-c', String(cpu), 'h2load', ...protocol, ...authority, ...args, '-D', String(seconds), t.url],
    { maxBuffer: 1 << 24, timeout: (seconds + 60) * 1000 },
  );
  return stdout;
}

/**
 * Istio's method: a fixed request rate over `connections` connections (each sends rate/connections
 * per second, one request at a time) and the latency of every request. One h2load per connection,
 * started a connection's period / connections apart: a single h2load with `--rps` fires every
 * connection on the same timer tick, so the proxy would see bursts of `connections` requests and the
 * table would measure the burst (bench/README.md, "Latency").
 */
export async function fixedRate(
  t: Target,
  o: { rps: number; connections: number; seconds: number; cpu: number },
): Promise<RateResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-bench-'));
  const perConnection = o.rps / o.connections;
  const staggerMs = 1000 / perConnection / o.connections;
  try {
    const runs = Array.from({ length: o.connections }, async (_, i) => {
      await new Promise((r) => setTimeout(r, i * staggerMs));
      const log = path.join(dir, `requests-${i}.tsv`);
      const stdout = await h2load(t, o.cpu, o.seconds, [
        '-c',
        '1',
        '-m',
        '1',
        `--rps=${perConnection}`,
        `--log-file=${log}`,
      ]);
      return { summary: parseH2load(stdout), lines: (await readFile(log, 'utf8')).split('\n') };
    });
    const done = await Promise.all(runs);
    const lines = done.flatMap((d) => d.lines);
    const lat = new Float64Array(lines.length);
    let n = 0;
    let failed = 0;
    for (const line of lines) {
      if (!line) continue;
      const [, status, us] = line.split('\t');
      const code = Number(status);
      if (code < 200 || code >= 300) failed++;
      lat[n++] = Number(us);
    }
    const sorted = lat.subarray(0, n).sort();
    return {
      requests: n,
      failed: failed + done.reduce((a, d) => a + d.summary.errored, 0),
      rps: done.reduce((a, d) => a + d.summary.rps, 0),
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      p99: quantile(sorted, 0.99),
      p999: quantile(sorted, 0.999),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface MaxResult {
  rps: number;
  requests: number;
  failed: number;
}

/** As many requests as the path takes: closed loop, `connections` connections. */
export async function maxThroughput(
  t: Target,
  o: { connections: number; seconds: number; cpu: number; streams?: number },
): Promise<MaxResult> {
  if (!t.h2) {
    if (t.body) throw new Error('bench: wrk sends no body; a target with one is HTTP/2 only');
    const headers = [...(t.authority ? ['-H', `Host: ${t.authority}`] : []), ...headerFlags(t)];
    const { stdout } = await run(
      'taskset',
      [
        '-c',
        String(o.cpu),
        'wrk',
        '-t',
        '1',
        '-c',
        String(o.connections),
        '-d',
        `${o.seconds}s`,
        ...headers,
        t.url,
      ],
      { timeout: (o.seconds + 60) * 1000 },
    );
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
    const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
    const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
    const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
    const socketErrors = errors ? errors.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
    if (!(rps > 0)) throw new Error(`wrk gave no rate:\n${stdout}`);
    return { rps, requests, failed: non2xx + socketErrors };
  }
  const stdout = await h2load(t, o.cpu, o.seconds, [
    '-c',
    String(o.connections),
    '-m',
    String(o.streams ?? 10),
  ]);
  const s = parseH2load(stdout);
  return { rps: s.rps, requests: s.done, failed: s.errored + s.non2xx };
}

function parseH2load(out: string): { rps: number; done: number; errored: number; non2xx: number } {
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1]);
  const req =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      out,
    );
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (!req || !(rps >= 0)) throw new Error(`cannot read h2load's summary:\n${out}`);
  return {
    rps,
    done: Number(req[3]),
    errored: Number(req[5]) + Number(req[6]) + Number(req[7]),
    non2xx: codes ? Number(codes[2]) + Number(codes[3]) + Number(codes[4]) : 0,
  };
}
