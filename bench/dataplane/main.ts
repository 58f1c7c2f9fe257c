// The data-plane bench: the same nginx upstream reached directly, through nginx, through one Trellis
// sidecar, through the mesh path (client sidecar → mTLS → server sidecar) and through the gateway,
// over HTTP/1.1 and HTTP/2, with Istio's method (fixed 1000 rps, 1 KB, 16 connections) and then at
// maximum throughput. Two cores: the load generator, the upstream and the control plane share CPU 0,
// the proxy under test (nginx or ours, both of ours on the mesh path) gets CPU 1.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sampleToken } from '../../samples/bookinfo/security/jwt/gen-jwt.ts';
import type { MeshInfo } from '../../src/platform/local-runtime.ts';
import { PortAllocator } from '../../src/platform/ports.ts';
import { fixedRate, type MaxResult, maxThroughput, type RateResult, type Target } from './load.ts';
import { startNginxProxy } from './nginx.ts';
import { cpuSeconds, memory, pin, processTree } from './proc.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const LOAD_CPU = 0;
const PROXY_CPU = 1;
const SERVICE = 'upstream.default.svc.cluster.local';

export interface DataPlaneOptions {
  rounds: number;
  /** Fixed-rate load before each measured run: the proxies' JIT is still compiling for the first seconds. */
  warmupSeconds: number;
  rateSeconds: number;
  maxSeconds: number;
  /** Scenario names to run (all when empty); direct always runs, it is every other's baseline. */
  only: string[];
  protocols: ('HTTP/1.1' | 'HTTP/2')[];
  log(line: string): void;
}

interface ProxyProcess {
  name: string;
  pid: number;
}

interface Scenario {
  name: string;
  what: string;
  target(h2: boolean): Target;
  proxies: ProxyProcess[];
}

export interface ProxyCost {
  name: string;
  vcpu: number;
  rssMiB: number;
  peakMiB: number;
}

export interface RunResult {
  scenario: string;
  protocol: 'HTTP/1.1' | 'HTTP/2';
  round: number;
  rate: RateResult;
  cost: ProxyCost[];
  max: MaxResult;
}

/** `trellis up` on the bench mesh, as a user runs it. */
async function startMesh(
  log: (l: string) => void,
): Promise<{ info: MeshInfo; child: ChildProcess; stateDir: string }> {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-bench-mesh-'));
  const child = spawn(
    process.execPath,
    [
      path.join(ROOT, 'src/cli/main.ts'),
      'up',
      'bench/dataplane/mesh.yaml',
      '--state-dir',
      stateDir,
      '--gateway-port',
      '0',
      '--api-port',
      '0',
      '--xds-port',
      '0',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const deadline = Date.now() + 60_000;
  while (!output.includes('Trellis mesh is up')) {
    if (child.exitCode !== null) throw new Error(`trellis up exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`trellis up did not come up within 60 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  log('mesh is up');
  const info = JSON.parse(readFileSync(path.join(stateDir, 'mesh.json'), 'utf8')) as MeshInfo;
  return { info, child, stateDir };
}

function pidOf(stateDir: string, name: string): number {
  return Number(readFileSync(path.join(stateDir, 'pids', `${name}.pid`), 'utf8'));
}

/** One request through a path, checked: 200 and the upstream's 1 KB body. */
function check(t: Target): Promise<void> {
  return new Promise((resolve, reject) => {
    const u = new URL(t.url);
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        headers: { ...t.headers, ...(t.authority ? { host: t.authority } : {}) },
      },
      (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
        });
        res.on('end', () =>
          res.statusCode === 200 && n === 1024
            ? resolve()
            : reject(new Error(`${t.url} (${t.authority ?? ''}): status ${res.statusCode}, ${n} bytes`)),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export async function runDataPlane(o: DataPlaneOptions): Promise<RunResult[]> {
  const mesh = await startMesh(o.log);
  const ports = new PortAllocator();
  const nginxPorts = { h1: await ports.next(), h2: await ports.next() };
  const nginx = await startNginxProxy(
    mesh.info.instances.find((i) => i.workload === 'upstream-v1')!.appPorts!['8080'],
    nginxPorts.h1,
    nginxPorts.h2,
  );
  try {
    const up = mesh.info.instances.find((i) => i.workload === 'upstream-v1')!;
    const guarded = mesh.info.instances.find((i) => i.workload === 'guarded-v1')!;
    // Valid for the whole run: verified once, then taken from the proxy's token cache.
    const jwt = {
      authorization: `Bearer ${await sampleToken({ expire: 86_400, claims: { scope: 'bench' } })}`,
    };
    const client = mesh.info.instances.find((i) => i.workload === 'client')!;
    const gw = mesh.info.instances.find((i) => i.role === 'gateway')!;
    const proxy = (id: string): ProxyProcess => ({
      name: id.split('.')[0],
      pid: pidOf(mesh.stateDir, `${id}.proxy`),
    });
    const appPorts = up.appPorts!;
    const all: Scenario[] = [
      {
        name: 'direct',
        what: 'load generator → upstream',
        target: (h2) => ({ url: `http://127.0.0.1:${h2 ? appPorts['8081'] : appPorts['8080']}/`, h2 }),
        proxies: [],
      },
      {
        name: 'nginx',
        what: 'nginx (1 worker, upstream keepalive) → upstream',
        target: (h2) => ({ url: `http://127.0.0.1:${h2 ? nginxPorts.h2 : nginxPorts.h1}/`, h2 }),
        proxies: [{ name: 'nginx', pid: nginx.pid }],
      },
      {
        name: 'sidecar',
        what: 'server sidecar (inbound, PERMISSIVE) → upstream',
        target: (h2) => ({ url: `http://127.0.0.1:${up.inboundPort}/`, authority: `${SERVICE}:80`, h2 }),
        proxies: [proxy(up.id)],
      },
      {
        name: 'mesh',
        what: 'client sidecar → mTLS HTTP/2 → server sidecar → upstream',
        target: (h2) => ({ url: `http://127.0.0.1:${client.outboundPort}/`, authority: SERVICE, h2 }),
        proxies: [proxy(client.id), proxy(up.id)],
      },
      {
        name: 'mesh-token',
        what: 'as mesh, with the JWT header mesh-policy sends: its baseline',
        target: (h2) => ({
          url: `http://127.0.0.1:${client.outboundPort}/`,
          authority: SERVICE,
          headers: jwt,
          h2,
        }),
        proxies: [proxy(client.id), proxy(up.id)],
      },
      {
        name: 'mesh-policy',
        what: 'as mesh, to a server sidecar with a JWT rule and 10 ALLOW rules (the last one matches)',
        target: (h2) => ({
          url: `http://127.0.0.1:${client.outboundPort}/`,
          authority: 'guarded.default.svc.cluster.local',
          headers: jwt,
          h2,
        }),
        proxies: [proxy(client.id), proxy(guarded.id)],
      },
      {
        name: 'mesh-plain',
        what: 'as mesh, on a route without retries and a cluster without outlier detection: the baseline of mesh-resilient',
        target: (h2) => ({ url: `http://127.0.0.1:${client.outboundPort}/`, authority: 'plain', h2 }),
        proxies: [proxy(client.id), proxy(up.id)],
      },
      {
        name: 'mesh-resilient',
        what: "as mesh, with Istio's default retry policy and outlier detection on the client sidecar",
        target: (h2) => ({ url: `http://127.0.0.1:${client.outboundPort}/`, authority: 'resilient', h2 }),
        proxies: [proxy(client.id), proxy(up.id)],
      },
      {
        name: 'gateway',
        what: 'ingress gateway → mTLS HTTP/2 → server sidecar → upstream',
        target: (h2) => ({ url: `http://127.0.0.1:${Object.values(gw.gatewayPorts!)[0]}/`, h2 }),
        proxies: [proxy(gw.id), proxy(up.id)],
      },
    ];

    const scenarios = o.only.length ? all.filter((s) => s.name === 'direct' || o.only.includes(s.name)) : all;
    pin(mesh.child.pid!, LOAD_CPU);
    for (const s of scenarios) for (const p of s.proxies) pin(p.pid, PROXY_CPU);
    for (const s of scenarios) await check(s.target(false));

    const results: RunResult[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      for (const protocol of o.protocols) {
        const h2 = protocol === 'HTTP/2';
        for (const s of scenarios) {
          const t = s.target(h2);
          await fixedRate(t, { rps: 1000, connections: 16, seconds: o.warmupSeconds, cpu: LOAD_CPU });
          const pids = s.proxies.map((p) => processTree(p.pid));
          const cpu0 = pids.map((tree) => tree.reduce((a, pid) => a + cpuSeconds(pid), 0));
          const t0 = performance.now();
          const rate = await fixedRate(t, {
            rps: 1000,
            connections: 16,
            seconds: o.rateSeconds,
            cpu: LOAD_CPU,
          });
          const wall = (performance.now() - t0) / 1000;
          const cost = s.proxies.map((p, i) => {
            const used = pids[i].reduce((a, pid) => a + cpuSeconds(pid), 0) - cpu0[i];
            const mem = pids[i]
              .map(memory)
              .reduce((a, m) => ({ rssMiB: a.rssMiB + m.rssMiB, peakMiB: a.peakMiB + m.peakMiB }), {
                rssMiB: 0,
                peakMiB: 0,
              });
            // Per 1000 requests/s: the CPU seconds the run took, scaled to the rate it really ran at.
            return { name: p.name, vcpu: (used / wall) * (1000 / (rate.requests / o.rateSeconds)), ...mem };
          });
          const max = await maxThroughput(t, { connections: 16, seconds: o.maxSeconds, cpu: LOAD_CPU });
          o.log(
            `round ${round} ${protocol} ${s.name}: p50 ${(rate.p50 / 1000).toFixed(3)} ms p90 ${(rate.p90 / 1000).toFixed(3)} ms p99 ${(rate.p99 / 1000).toFixed(3)} ms` +
              `${cost.map((c) => ` ${c.name} ${c.vcpu.toFixed(3)} vCPU ${c.rssMiB.toFixed(1)} MiB`).join('')}; max ${Math.round(max.rps)} req/s` +
              (rate.failed || max.failed ? `; FAILED ${rate.failed}+${max.failed}` : ''),
          );
          results.push({ scenario: s.name, protocol, round, rate, cost, max });
        }
      }
    }
    return results;
  } finally {
    await nginx.stop();
    ports.release();
    await stopMesh(mesh.child);
    await rm(mesh.stateDir, { recursive: true, force: true });
  }
}

/** Ctrl-C to `trellis up`'s process group, as a user would; it stops every process it started. */
async function stopMesh(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(-child.pid!, 'SIGINT');
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}
