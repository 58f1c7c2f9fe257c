// Control-plane benchmark: a real control plane (`trellis control-plane`, its own process) and many
// simulated proxies (sim.ts, another process) speaking the real push protocol over real mTLS. For each
// scenario it applies the mesh, connects the proxies, waits until every one is SYNCED, then applies a
// change to a VirtualService every proxy can reach and measures apply → ACK per proxy; it also reads
// the control plane's CPU and memory from /proc.
//
//   node_modules/.bin/node bench/controlplane/main.ts [--quick] [--out <file.json>] [--sim parse|build|light]
//        [--only <scenario,...>] [--applies <n>] [--cp-prof <dir>] [--sim-prof <dir>] [--keep]
//
// --quick is the CI smoke test: tiny sizes, checks correctness only (every proxy ACKs every apply with
// a snapshot carrying the change) and exits non-zero otherwise. See README.md for the method.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { ProxyNode } from '../../src/compile/snapshot.ts';
import { cpuSeconds, machineBusySeconds, median, memoryMiB, ms, percentile } from './measure.ts';
import { hubYaml, meshYaml, proxyNodes } from './mesh.ts';
import type { ChildMessage, ParentMessage, RoundReply, SimMode, SimStats } from './sim.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'src/cli/main.ts');
const SIM = path.join(import.meta.dirname, 'sim.ts');

interface Scenario {
  name: string;
  proxies: number;
  services: number;
  applies: number;
  /** Start an apply at most this often (ms); rounds that take longer follow one another at once. */
  intervalMs: number;
  /** What the simulated proxies do with a snapshot (--sim overrides it for every scenario). */
  sim: SimMode;
}

interface Result {
  scenario: string;
  proxies: number;
  services: number;
  applies: number;
  sim: SimMode;
  ok: boolean;
  errors: string[];
  /** The control plane's log, kept when the scenario failed or with --keep. */
  log?: string;
  /** Largest snapshot message a proxy received (bytes). */
  snapshotBytes?: number;
  /** Largest delta message a proxy received (bytes). */
  deltaBytes?: number;
  /** Per apply, over the measured window: bytes all proxies received, and how many messages of each kind. */
  perApply?: { bytes: number; snapshots: number; deltas: number };
  setup?: { certMs: number; connectMs: number; syncMs: number };
  /** Over every proxy and every apply. */
  applyToAckMs?: { p50: number; p90: number; p99: number; max: number; samples: number };
  /** Apply sent → the snapshot's last byte read by the simulated proxy. */
  applyToDeliveredMs?: { p50: number; p90: number; p99: number; max: number };
  /** What one proxy spends on a snapshot: JSON.parse (and build) through the ACK written. */
  handleMs?: { p50: number; p99: number };
  /**
   * Delivered + handle, per proxy: apply → ACK as it would be if each proxy had a core of its own
   * instead of waiting its turn on the one the simulated proxies share. An estimate, labelled so.
   */
  ownCoreAckMs?: { p50: number; p90: number; p99: number; max: number };
  /** Per apply: the largest ownCoreAckMs. */
  ownCoreAllAckedMs?: number[];
  /** Per apply: the time until the last proxy ACKed. */
  allAckedMs?: number[];
  cp?: {
    /** CPU seconds the control plane used per apply round (window CPU / applies). */
    cpuSecondsPerRound: number;
    /** Average vCPU over the window from the first apply to the last round's last ACK. */
    vcpu: number;
    windowS: number;
    /** The window on the monotonic clock (µs), to cut a --cp-prof profile to it. */
    windowUs: [number, number];
    /** Average vCPU in the second before the first apply (connected, synced, nothing changing). */
    idleVcpu: number;
    /**
     * vCPU the rest of the machine used during the window (busy time from /proc/stat minus this
     * benchmark's processes): anything well above 0 means the numbers are disturbed.
     */
    otherVcpu: number;
    rssMiB: number;
    peakRssMiB: number;
  };
  proxiesCpu?: { cpuSeconds: number; messages: number };
}

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    sim: { type: 'string' },
    only: { type: 'string' },
    applies: { type: 'string' },
    'cp-prof': { type: 'string' },
    'sim-prof': { type: 'string' },
    keep: { type: 'boolean', default: false },
    window: { type: 'string' },
  },
});

if (args.sim !== undefined && !['parse', 'build', 'light'].includes(args.sim)) {
  process.stderr.write('--sim must be parse, build or light\n');
  process.exit(64);
}

// The latency grid runs proxies that parse what they get. The resource scenario measures the control
// plane; its proxies run light (they still read every byte over TLS, only skip JSON.parse) so that
// 2000 of them on one core get through a round in reasonable time. See README.md.
const SCENARIOS: Scenario[] = (
  args.quick
    ? [{ name: 'quick', proxies: 10, services: 10, applies: 2, intervalMs: 0, sim: 'parse' }]
    : [
        { name: 'p100-s100', proxies: 100, services: 100, applies: 5, intervalMs: 0, sim: 'parse' },
        { name: 'p100-s1000', proxies: 100, services: 1000, applies: 5, intervalMs: 0, sim: 'parse' },
        { name: 'p1000-s100', proxies: 1000, services: 100, applies: 5, intervalMs: 0, sim: 'parse' },
        { name: 'p1000-s1000', proxies: 1000, services: 1000, applies: 5, intervalMs: 0, sim: 'parse' },
        { name: 'p2000-s1000', proxies: 2000, services: 1000, applies: 3, intervalMs: 2000, sim: 'light' },
      ]
).map((s): Scenario => ({ ...s, sim: (args.sim as SimMode | undefined) ?? (s.sim as SimMode) }));

const canPin = os.availableParallelism() >= 2 && spawnSync('taskset', ['-c', '0', 'true']).status === 0;
/** The control plane runs on core 1; this process and the simulated proxies on core 0. */
function pinned(core: number, command: string, argv: string[]): [string, string[]] {
  return canPin ? ['taskset', ['-c', String(core), command, ...argv]] : [command, argv];
}

const sleep = (t: number) => new Promise((r) => setTimeout(r, t));

/** Waits for a child to exit, killing it with SIGKILL after graceMs; leaves no timer behind. */
async function reap(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

class ControlPlane {
  readonly child: ChildProcess;
  readonly stateDir: string;
  pid = 0;
  api = '';
  xds = '';
  rootCertPem = '';
  /** The admin credential's headers: the benchmark is the platform that registers every proxy. */
  auth: Record<string, string> = {};
  exited = false;

  constructor(stateDir: string, profDir: string | undefined) {
    this.stateDir = stateDir;
    const log = openSync(path.join(stateDir, 'control-plane.log'), 'a');
    const flags = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
    const [cmd, argv] = pinned(1, process.execPath, [
      ...flags,
      CLI,
      'control-plane',
      '--state-dir',
      path.join(stateDir, 'cp'),
      '--api-port',
      '0',
      '--xds-port',
      '0',
    ]);
    this.child = spawn(cmd, argv, {
      cwd: ROOT,
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        TRELLIS_LOG_FORMAT: 'json',
        TRELLIS_LOG_LEVEL: process.env.TRELLIS_LOG_LEVEL ?? 'info',
      },
    });
    this.child.on('exit', () => {
      this.exited = true;
    });
  }

  async ready(): Promise<void> {
    const infoFile = path.join(this.stateDir, 'cp', 'control-plane.json');
    const info = await until('the control plane', 30_000, async () => {
      if (this.exited) throw new Error('exited');
      if (!existsSync(infoFile)) return undefined;
      return JSON.parse(readFileSync(infoFile, 'utf8')) as {
        pid: number;
        api: string;
        xds: string;
        rootCert: string;
        adminTokenFile: string;
      };
    });
    this.pid = info.pid;
    this.api = info.api;
    this.xds = info.xds;
    this.rootCertPem = readFileSync(info.rootCert, 'utf8');
    this.auth = {
      authorization: `Bearer ${readFileSync(info.adminTokenFile, 'utf8').trim()}`,
      'content-type': 'application/json',
    };
  }

  async apply(text: string): Promise<number> {
    const res = await fetch(`${this.api}/api/v1/apply`, {
      method: 'POST',
      headers: this.auth,
      body: JSON.stringify({ sources: [{ file: 'bench.yaml', text }] }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json()) as { revision?: number; message?: string };
    if (res.status !== 200) throw new Error(`apply: HTTP ${res.status}: ${body.message}`);
    return body.revision!;
  }

  async proxyStatus(): Promise<{
    revision: number;
    proxies: { id: string; status: string; latest?: { version: string } }[];
  }> {
    const res = await fetch(`${this.api}/api/v1/proxy-status`, {
      headers: this.auth,
      signal: AbortSignal.timeout(30_000),
    });
    return (await res.json()) as Awaited<ReturnType<ControlPlane['proxyStatus']>>;
  }

  /** Registers every proxy as `trellis up` does; answers each one's bootstrap token, by proxy id. */
  async register(nodes: ProxyNode[]): Promise<Record<string, string>> {
    const tokens: Record<string, string> = {};
    let next = 0;
    const worker = async () => {
      while (next < nodes.length) {
        const { healthy: _, ...node } = nodes[next++];
        const res = await fetch(`${this.api}/api/v1/instances`, {
          method: 'POST',
          headers: this.auth,
          body: JSON.stringify({ node }),
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await res.json()) as { token?: string; message?: string };
        if (!body.token) throw new Error(`register ${node.id}: HTTP ${res.status}: ${body.message}`);
        tokens[node.id] = body.token;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    return tokens;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    await reap(this.child, 15_000);
  }
}

class Sims {
  readonly child: ChildProcess;
  private readonly waiting = new Map<string, (m: ChildMessage) => void>();
  exited = false;

  constructor(profDir: string | undefined) {
    const flags = profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
    const [cmd, argv] = pinned(0, process.execPath, ['--max-old-space-size=8192', ...flags, SIM]);
    this.child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: ChildMessage) => {
      const key = m.type === 'failed' ? 'ready' : m.type === 'round' ? `round:${m.marker}` : m.type;
      this.waiting.get(key)?.(m);
    });
    this.child.on('exit', () => {
      this.exited = true;
      for (const w of this.waiting.values()) w({ type: 'failed', error: 'simulated proxies exited' });
    });
  }

  private request<T extends ChildMessage>(msg: ParentMessage, key: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(new Error(`simulated proxies: no answer to ${msg.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(key, (m) => {
        clearTimeout(timer);
        this.waiting.delete(key);
        if (m.type === 'failed') reject(new Error(m.error));
        else resolve(m as T);
      });
      this.child.send(msg);
    });
  }

  start(msg: Extract<ParentMessage, { type: 'start' }>) {
    return this.request<Extract<ChildMessage, { type: 'ready' }>>(msg, 'ready', msg.timeoutMs);
  }

  awaitMarker(marker: string, timeoutMs: number) {
    return this.request<RoundReply>(
      { type: 'await', marker, timeoutMs },
      `round:${marker}`,
      timeoutMs + 10_000,
    );
  }

  async stats(): Promise<SimStats> {
    return (await this.request<Extract<ChildMessage, { type: 'stats' }>>({ type: 'stats' }, 'stats', 10_000))
      .stats;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    if (this.child.connected) this.child.send({ type: 'stop' });
    await reap(this.child, 5_000);
  }
}

/** RSS sampled every 100 ms while a scenario runs. */
class MemorySampler {
  max = 0;
  private readonly timer: NodeJS.Timeout;
  constructor(pid: number) {
    this.timer = setInterval(() => {
      const m = memoryMiB(pid);
      if (m && m.rss > this.max) this.max = m.rss;
    }, 100);
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

async function runScenario(s: Scenario): Promise<Result> {
  const result: Result = {
    scenario: s.name,
    proxies: s.proxies,
    services: s.services,
    applies: s.applies,
    sim: s.sim,
    ok: false,
    errors: [],
  };
  const dir = await mkdtemp(path.join(os.tmpdir(), `trellis-bench-cp-${s.name}-`));
  const cp = new ControlPlane(dir, args['cp-prof'] ? path.resolve(args['cp-prof'], s.name) : undefined);
  let sims: Sims | undefined;
  let sampler: MemorySampler | undefined;
  // Bounded everywhere: generous for the large scenarios, so a slow control plane fails instead of hanging.
  const scale = (s.proxies * s.services) / 1e6; // 2 at the largest size
  const setupTimeoutMs = 60_000 + scale * 60_000;
  const roundTimeoutMs = 30_000 + scale * 30_000;
  try {
    await cp.ready();
    sampler = new MemorySampler(cp.pid);
    await cp.apply(meshYaml(s.services, s.proxies));
    const nodes = proxyNodes(s.services, s.proxies);
    const tokens = await cp.register(nodes);
    const setupStart = performance.now();
    sims = new Sims(args['sim-prof'] ? path.resolve(args['sim-prof'], s.name) : undefined);
    const ready = await sims.start({
      type: 'start',
      xds: cp.xds,
      rootCertPem: cp.rootCertPem,
      tokens,
      trustDomain: 'cluster.local',
      nodes,
      mode: s.sim,
      windowBytes: args.window ? Number(args.window) : undefined,
      timeoutMs: setupTimeoutMs,
    });
    // Synced: every proxy ACKed the initial hub route, and the control plane sees all of them SYNCED
    // on two polls in a row (so no push triggered by the last connections is still on its way).
    const initial = await sims.awaitMarker('0', setupTimeoutMs);
    if (initial.ackUs.some((t) => t === null))
      throw new Error('not every proxy received the initial snapshot');
    let previous = '';
    await until('every proxy SYNCED', setupTimeoutMs, async () => {
      const st = await cp.proxyStatus();
      const synced = st.proxies.length === s.proxies && st.proxies.every((p) => p.status === 'SYNCED');
      const versions = st.proxies.map((p) => p.latest?.version).join(',');
      const stable = synced && versions === previous;
      previous = synced ? versions : '';
      if (!stable) await sleep(400);
      return stable ? true : undefined;
    });
    result.setup = {
      certMs: Math.round(ready.certMs),
      connectMs: Math.round(ready.connectMs),
      syncMs: Math.round(performance.now() - setupStart),
    };

    const idleCpu0 = cpuSeconds(cp.pid)!;
    await sleep(1000);
    const idleVcpu = (cpuSeconds(cp.pid)! - idleCpu0) / 1;

    const latencies: number[] = [];
    const delivered: number[] = [];
    const handle: number[] = [];
    const ownCore: number[] = [];
    const allAcked: number[] = [];
    const ownCoreAll: number[] = [];
    sampler.max = 0;
    const ours = () =>
      cpuSeconds(cp.pid)! + (cpuSeconds(sims!.child.pid!) ?? 0) + (cpuSeconds(process.pid) ?? 0);
    const busy0 = machineBusySeconds() - ours();
    const st0 = await sims.stats();
    const cpu0 = cpuSeconds(cp.pid)!;
    const w0 = performance.now();
    const w0Us = nowUs();
    for (let r = 1; r <= s.applies; r++) {
      const roundStart = performance.now();
      const t0 = nowUs();
      const revision = await cp.apply(hubYaml(r));
      const reply = await sims.awaitMarker(String(r), roundTimeoutMs);
      const missing = reply.ackUs.filter((t) => t === null).length;
      if (missing > 0) result.errors.push(`apply ${r}: ${missing} of ${s.proxies} proxies did not ACK it`);
      if (reply.revisions.some((rev) => rev < revision))
        result.errors.push(`apply ${r}: a snapshot carried the change at a revision before ${revision}`);
      let roundMax = 0;
      let roundOwnMax = 0;
      reply.ackUs.forEach((ack, i) => {
        const rcv = reply.receivedUs[i];
        const h = reply.handleUs[i];
        if (ack === null || rcv === null || h === null) return;
        const a = (ack - t0) / 1000;
        const own = (rcv - t0 + h) / 1000;
        latencies.push(a);
        delivered.push((rcv - t0) / 1000);
        handle.push(h / 1000);
        ownCore.push(own);
        roundMax = Math.max(roundMax, a);
        roundOwnMax = Math.max(roundOwnMax, own);
      });
      allAcked.push(missing ? Number.POSITIVE_INFINITY : roundMax);
      ownCoreAll.push(missing ? Number.POSITIVE_INFINITY : roundOwnMax);
      const wait = s.intervalMs - (performance.now() - roundStart);
      if (wait > 0 && r < s.applies) await sleep(wait);
    }
    const windowS = (performance.now() - w0) / 1000;
    const cpu = cpuSeconds(cp.pid)! - cpu0;
    const otherVcpu = Math.max(0, machineBusySeconds() - ours() - busy0) / windowS;
    const mem = memoryMiB(cp.pid)!;
    const dist = (values: number[]) => {
      values.sort((a, b) => a - b);
      return {
        p50: percentile(values, 50),
        p90: percentile(values, 90),
        p99: percentile(values, 99),
        max: values[values.length - 1],
      };
    };
    result.applyToAckMs = { ...dist(latencies), samples: latencies.length };
    result.applyToDeliveredMs = dist(delivered);
    const h = dist(handle);
    result.handleMs = { p50: h.p50, p99: h.p99 };
    result.ownCoreAckMs = dist(ownCore);
    result.ownCoreAllAckedMs = ownCoreAll;
    result.allAckedMs = allAcked;
    result.cp = {
      cpuSecondsPerRound: cpu / s.applies,
      vcpu: cpu / windowS,
      windowS,
      windowUs: [w0Us, nowUs()],
      idleVcpu,
      otherVcpu,
      rssMiB: Math.max(sampler.max, mem.rss),
      peakRssMiB: mem.hwm,
    };
    const st = await sims.stats();
    result.snapshotBytes = st.maxSnapshotBytes;
    result.deltaBytes = st.maxDeltaBytes;
    result.perApply = {
      bytes: (st.bytes - st0.bytes) / s.applies,
      snapshots: (st.snapshots - st0.snapshots) / s.applies,
      deltas: (st.deltas - st0.deltas) / s.applies,
    };
    result.proxiesCpu = { cpuSeconds: st.cpuS, messages: st.snapshots + st.deltas };
    if (st.nacks) result.errors.push(`${st.nacks} snapshots or deltas were NACKed`);
    if (result.perApply.deltas < s.proxies)
      result.errors.push('an apply reached some proxies in full, not as a delta');
    if (st.disconnected) result.errors.push(`${st.disconnected} proxies lost their stream`);
    for (const e of st.errors) result.errors.push(`sim: ${e}`);
    result.ok = result.errors.length === 0;
  } catch (err) {
    result.errors.push(err instanceof Error ? err.message : String(err));
  } finally {
    sampler?.stop();
    await sims?.stop();
    await cp.stop();
    if (result.errors.length || args.keep) result.log = path.join(dir, 'control-plane.log');
    else await rm(dir, { recursive: true, force: true });
  }
  return result;
}

const SIM_MODES: Record<SimMode, string> = {
  parse: 'JSON.parse (a delta rebuilt with applyDelta), then ACK',
  build: 'JSON.parse (a delta rebuilt with applyDelta) and ProxyConfig.build, then ACK',
  light: 'read every byte, no JSON.parse (version, delta base and marker found in the text), then ACK',
};

function bytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

function received(r: Result): string {
  const a = r.perApply;
  if (!a) return '–';
  const each = a.bytes / (a.snapshots + a.deltas);
  return `${bytes(a.bytes)} (${Math.round(a.snapshots)} + ${Math.round(a.deltas)}; ${bytes(each)} each)`;
}

function markdown(results: Result[]): string {
  const f = (v: number | undefined) => ms(v ?? Number.NaN);
  const lines = [
    '## Control plane: apply → ACK, CPU and memory',
    '',
    `Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ` +
      `${Math.round(os.totalmem() / 2 ** 30)} GiB; Node ${process.version}; ` +
      (canPin
        ? 'control plane pinned to core 1, simulated proxies (and this driver) to core 0.'
        : 'no CPU pinning.'),
    `Simulated proxies: ${[...new Set(results.map((r) => r.sim))].map((m) => `${m} = ${SIM_MODES[m]}`).join('; ')}.`,
    '',
    '| scenario | proxies | services | sim | snapshot | apply→ACK p50 | p90 | p99 | max | all ACKed: median (range) | CP CPU-s / apply | CP vCPU (window) | CP RSS max / peak |',
    '|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const r of results) {
    if (!r.applyToAckMs || !r.cp || !r.allAckedMs) {
      lines.push(
        `| ${r.scenario} | ${r.proxies} | ${r.services} | ${r.sim} | failed: ${r.errors[0] ?? '?'} | | | | | | | | |`,
      );
      continue;
    }
    const a = r.applyToAckMs;
    const all = r.allAckedMs;
    const kb = r.snapshotBytes ? `${Math.round(r.snapshotBytes / 1024)} KiB` : '–';
    lines.push(
      `| ${r.scenario}${r.ok ? '' : ' (errors)'} | ${r.proxies} | ${r.services} | ${r.sim} | ${kb} | ${f(a.p50)} ms | ${f(a.p90)} | ${f(a.p99)} | ${f(a.max)} | ${f(median(all))} ms (${f(Math.min(...all))}–${f(Math.max(...all))}) | ${r.cp.cpuSecondsPerRound.toFixed(2)} | ${r.cp.vcpu.toFixed(2)} | ${Math.round(r.cp.rssMiB)} / ${Math.round(r.cp.peakRssMiB)} MiB |`,
    );
  }
  lines.push(
    '',
    '| scenario | apply→delivered p50 / p99 | one proxy parse→ACK p50 / p99 | est. own-core apply→ACK p99 / all (median) | received / apply: bytes (snapshots + deltas; mean size) | largest delta (setup included) | sim CPU-s (messages) | setup: certs / connect / all SYNCED | CP idle vCPU | other load (vCPU) |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  );
  for (const r of results) {
    if (!r.setup || !r.cp) continue;
    lines.push(
      `| ${r.scenario} | ${f(r.applyToDeliveredMs?.p50)} / ${f(r.applyToDeliveredMs?.p99)} ms | ${f(r.handleMs?.p50)} / ${f(r.handleMs?.p99)} ms | ${f(r.ownCoreAckMs?.p99)} / ${f(median(r.ownCoreAllAckedMs ?? []))} ms | ${received(r)} | ${bytes(r.deltaBytes ?? 0)} | ${r.proxiesCpu?.cpuSeconds.toFixed(1) ?? '–'} (${r.proxiesCpu?.messages ?? 0}) | ${(r.setup.certMs / 1000).toFixed(1)} / ${(r.setup.connectMs / 1000).toFixed(1)} / ${(r.setup.syncMs / 1000).toFixed(1)} s | ${r.cp.idleVcpu.toFixed(2)} | ${r.cp.otherVcpu.toFixed(2)} |`,
    );
  }
  lines.push('');
  for (const r of results) {
    for (const e of r.errors) lines.push(`- ${r.scenario}: **error** ${e}`);
    if (r.log) lines.push(`- ${r.scenario}: control-plane log in ${r.log}`);
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<number> {
  if (canPin) spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
  const only = args.only?.split(',');
  const results: Result[] = [];
  for (const s of SCENARIOS) {
    if (only && !only.includes(s.name)) continue;
    const scenario = args.applies ? { ...s, applies: Number(args.applies) } : s;
    process.stderr.write(
      `[bench/controlplane] ${scenario.name}: ${s.proxies} proxies × ${s.services} services\n`,
    );
    const r = await runScenario(scenario);
    process.stderr.write(
      `[bench/controlplane] ${scenario.name}: ${r.ok ? 'ok' : 'FAILED'}${r.applyToAckMs ? ` p99 ${ms(r.applyToAckMs.p99)} ms` : ''}${r.errors.length ? ` ${r.errors.join('; ')}` : ''}\n`,
    );
    results.push(r);
  }
  const md = markdown(results);
  process.stdout.write(md);
  if (args.out) await writeFile(args.out, `${JSON.stringify({ markdown: md, results }, null, 2)}\n`);
  return results.every((r) => r.ok) ? 0 : 1;
}

process.exitCode = await main();
