// A small fortio-like load client: n requests over c keep-alive connections, then a summary of the
// status codes and latency percentiles in fortio's words, so Istio's circuit-breaking task reads the same.
//   node samples/httpbin/load.ts -c 3 -n 30 [-qps 0] [-H 'k: v']... [-json] http://httpbin:8000/get
import { Agent, request } from 'node:http';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface LoadOptions {
  url: string;
  /** Concurrent connections (and workers). */
  connections?: number;
  requests?: number;
  /** Overall requests per second; 0 means as fast as the connections allow. */
  qps?: number;
  method?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Proxy environment for the agent; defaults to process.env when NODE_USE_ENV_PROXY=1, as Node does. */
  proxyEnv?: NodeJS.ProcessEnv;
}

export interface LoadResult {
  url: string;
  connections: number;
  requests: number;
  /** Status code → count; -1 counts requests that got no response (fortio does the same). */
  codes: Record<string, number>;
  /** Distinct sockets the agent opened. */
  sockets: number;
  durationMs: number;
  actualQps: number;
  latencyMs: {
    min: number;
    avg: number;
    max: number;
    p50: number;
    p75: number;
    p90: number;
    p99: number;
    p999: number;
  };
  errors: string[];
}

const PERCENTILES = [50, 75, 90, 99, 99.9] as const;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const connections = Math.max(1, opts.connections ?? 1);
  const total = Math.max(0, opts.requests ?? 10);
  const qps = opts.qps ?? 0;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const proxyEnv = opts.proxyEnv ?? (process.env.NODE_USE_ENV_PROXY === '1' ? process.env : undefined);
  const agent = new Agent({ keepAlive: true, maxSockets: connections, ...(proxyEnv ? { proxyEnv } : {}) });
  const seen = new WeakSet<Socket>();
  let sockets = 0;
  const codes: Record<string, number> = {};
  const latencies: number[] = [];
  const errors: string[] = [];

  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const done = (code: number, error?: string) => {
        latencies.push(performance.now() - t0);
        codes[code] = (codes[code] ?? 0) + 1;
        // Keep a few messages: a dead target would otherwise log n copies of one line.
        if (error && errors.length < 10) errors.push(error);
        resolve();
      };
      const req = request(opts.url, { method: opts.method ?? 'GET', headers: opts.headers, agent }, (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? -1));
        res.on('error', (err) => done(-1, err.message));
      });
      req.on('socket', (s) => {
        if (!seen.has(s)) {
          seen.add(s);
          sockets++;
        }
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
      req.on('error', (err) => done(-1, err.message));
      req.end();
    });

  const start = performance.now();
  let next = 0;
  // Each worker takes the next request number; with a qps, request i waits for its slot i/qps.
  const worker = async () => {
    while (next < total) {
      const i = next++;
      if (qps > 0) {
        const wait = start + (i * 1000) / qps - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      await once();
    }
  };
  await Promise.all(Array.from({ length: Math.min(connections, total) }, worker));
  const durationMs = performance.now() - start;
  agent.destroy();

  const sorted = [...latencies].sort((a, b) => a - b);
  const [p50, p75, p90, p99, p999] = PERCENTILES.map((p) => percentile(sorted, p));
  return {
    url: opts.url,
    connections,
    requests: total,
    codes,
    sockets,
    durationMs,
    actualQps: durationMs > 0 ? (total * 1000) / durationMs : 0,
    latencyMs: {
      min: sorted[0] ?? 0,
      avg: sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : 0,
      max: sorted[sorted.length - 1] ?? 0,
      p50,
      p75,
      p90,
      p99,
      p999,
    },
    errors,
  };
}

/** fortio's text summary (latencies in seconds, as fortio prints them). */
export function formatResult(r: LoadResult): string {
  const s = (ms: number) => (ms / 1000).toFixed(6);
  const lines = [
    `Fortio-like load to ${r.url}: ${r.connections} connections, ${r.requests} calls`,
    `Sockets used: ${r.sockets} (for perfect keepalive, would be ${Math.min(r.connections, r.requests)})`,
  ];
  for (const [code, n] of Object.entries(r.codes).sort(([a], [b]) => Number(a) - Number(b))) {
    lines.push(`Code ${code} : ${n} (${((n * 100) / (r.requests || 1)).toFixed(1)} %)`);
  }
  const l = r.latencyMs;
  lines.push(`Response time histogram: min ${s(l.min)}, avg ${s(l.avg)}, max ${s(l.max)}`);
  const values = [l.p50, l.p75, l.p90, l.p99, l.p999];
  PERCENTILES.forEach((p, i) => {
    lines.push(`# target ${p}% ${s(values[i])}`);
  });
  for (const e of r.errors) lines.push(`Error: ${e}`);
  lines.push(
    `All done ${r.requests} calls (plus 0 warmup) ${l.avg.toFixed(3)} ms avg, ${r.actualQps.toFixed(1)} qps`,
  );
  return `${lines.join('\n')}\n`;
}

const USAGE =
  "usage: load.ts [-c conns] [-n calls] [-qps rate] [-t timeout_ms] [-X method] [-H 'k: v']... [-json] <url>";

export function parseArgs(argv: string[]): { opts: LoadOptions; json: boolean } {
  const opts: LoadOptions = { url: '', connections: 1, requests: 10, qps: 0, headers: {} };
  let json = false;
  const num = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0)
      throw new Error(`${flag} needs a non-negative number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-c') opts.connections = num(a, argv[++i]);
    else if (a === '-n') opts.requests = num(a, argv[++i]);
    else if (a === '-qps') opts.qps = num(a, argv[++i]);
    else if (a === '-t') opts.timeoutMs = num(a, argv[++i]);
    else if (a === '-X') opts.method = argv[++i];
    else if (a === '-json') json = true;
    else if (a === '-H') {
      const h = argv[++i] ?? '';
      const colon = h.indexOf(':');
      if (colon < 1) throw new Error(`-H needs 'name: value', got ${JSON.stringify(h)}`);
      opts.headers![h.slice(0, colon).trim()] = h.slice(colon + 1).trim();
    } else if (a.startsWith('-')) throw new Error(`unknown flag ${a}`);
    else if (opts.url) throw new Error('one URL only');
    else opts.url = a;
  }
  if (!/^http:\/\//.test(opts.url)) throw new Error('an http:// URL is required');
  return { opts, json };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    process.exit(64);
  }
  const result = await runLoad(parsed.opts);
  process.stdout.write(parsed.json ? `${JSON.stringify(result, null, 2)}\n` : formatResult(result));
}
