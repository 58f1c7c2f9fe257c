// The data-plane bench: the same nginx upstream reached directly, through nginx, through one Trellis
// sidecar, through the mesh path (client sidecar → mTLS → server sidecar) and through the gateway,
// over HTTP/1.1 and HTTP/2, with Istio's method (fixed 1000 rps, 1 KB, 16 connections) and then at
// maximum throughput. The same for gRPC (a grpc-js echo; nginx's grpc_pass the reference) and for TCP
// passthrough (an echo server, ping-pong of 1 KB; nginx's stream module the reference). Two cores: the load generator, the upstream and the control plane share CPU 0,
// the proxy under test (nginx or ours, both of ours on the mesh path) gets CPU 1.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { sampleToken } from '../../samples/bookinfo/security/jwt/gen-jwt.ts';
import type { MeshInfo } from '../../src/platform/local-runtime.ts';
import { PortAllocator } from '../../src/platform/ports.ts';
import { ECHO_PATH, grpcFrame } from './grpc-upstream.ts';
import { fixedRate, type MaxResult, maxThroughput, type RateResult, type Target } from './load.ts';
import { startNginxGrpc, startNginxProxy, startNginxStream } from './nginx.ts';
import { cpuSeconds, memory, pin, processTree } from './proc.ts';
import { baselines } from './report.ts';
import type { TcpRun, TcpTarget } from './tcp-load.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);
const LOAD_CPU = 0;
const PROXY_CPU = 1;
const SERVICE = 'upstream.default.svc.cluster.local';

export interface DataPlaneOptions {
  rounds: number;
  /** Fixed-rate load before each measured run: the proxies' JIT is still compiling for the first seconds. */
  warmupSeconds: number;
  rateSeconds: number;
  maxSeconds: number;
  /** Scenario names to run (all when empty); each one's direct baseline runs with it. */
  only: string[];
  protocols: HttpProtocol[];
  log(line: string): void;
}

type HttpProtocol = 'HTTP/1.1' | 'HTTP/2';
export type Protocol = HttpProtocol | 'TCP';

interface ProxyProcess {
  name: string;
  pid: number;
}

interface Scenario {
  name: string;
  what: string;
  /** Default HTTP/1.1 and HTTP/2 (those of them the run asks for). */
  protocols?: Protocol[];
  target(h2: boolean): Target;
  /** For protocol TCP: where the ping-pong connects. */
  tcp?: TcpTarget;
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
  protocol: Protocol;
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
      // The load generator plays the client app from outside any network namespace.
      '--capture=explicit',
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

/** One gRPC call through a path, checked: grpc-status 0 and the message echoed. */
function checkGrpc(t: Target): Promise<void> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(t.url);
    session.on('error', reject);
    const u = new URL(t.url);
    const frame = grpcFrame();
    const stream = session.request({
      ':method': 'POST',
      ':path': u.pathname,
      ...(t.authority ? { ':authority': t.authority } : {}),
      ...t.headers,
    });
    let n = 0;
    let status: string | undefined;
    stream.on('data', (c: Buffer) => {
      n += c.length;
    });
    stream.on('trailers', (trailers) => {
      status = String(trailers['grpc-status']);
    });
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      if (status === '0' && n === frame.length) resolve();
      else reject(new Error(`${t.url} (${t.authority ?? ''}): grpc-status ${status}, ${n} bytes`));
    });
    stream.end(frame);
  });
}

/** The TCP load generator as its own process, pinned like h2load and wrk. */
async function tcpLoad(t: TcpTarget, o: { rps: number; connections: number; seconds: number; cpu: number }) {
  const args = [
    '-c',
    String(o.cpu),
    process.execPath,
    path.join(import.meta.dirname, 'tcp-load.ts'),
    '--host',
    t.host,
    '--port',
    String(t.port),
    ...(t.connect ? ['--connect', t.connect] : []),
    '--rps',
    String(o.rps),
    '--connections',
    String(o.connections),
    '--seconds',
    String(o.seconds),
  ];
  const { stdout } = await run('taskset', args, { timeout: (o.seconds + 60) * 1000 });
  return JSON.parse(stdout) as TcpRun;
}

export async function runDataPlane(o: DataPlaneOptions): Promise<RunResult[]> {
  const mesh = await startMesh(o.log);
  const ports = new PortAllocator();
  const appPortOf = (workload: string, port: string) =>
    mesh.info.instances.find((i) => i.workload === workload)!.appPorts![port];
  const nginxPorts = {
    h1: await ports.next(),
    h2: await ports.next(),
    grpc: await ports.next(),
    tcp: await ports.next(),
  };
  const nginx = await startNginxProxy(appPortOf('upstream-v1', '8080'), nginxPorts.h1, nginxPorts.h2);
  const nginxGrpc = await startNginxGrpc(appPortOf('grpc-echo-v1', '9100'), nginxPorts.grpc);
  const nginxStream = await startNginxStream(appPortOf('echo-v1', '9000'), nginxPorts.tcp);
  try {
    const up = mesh.info.instances.find((i) => i.workload === 'upstream-v1')!;
    const guarded = mesh.info.instances.find((i) => i.workload === 'guarded-v1')!;
    // Valid for the whole run: verified once, then taken from the proxy's token cache.
    const jwt = {
      authorization: `Bearer ${await sampleToken({ expire: 86_400, claims: { scope: 'bench' } })}`,
    };
    const client = mesh.info.instances.find((i) => i.workload === 'client')!;
    const grpcEcho = mesh.info.instances.find((i) => i.workload === 'grpc-echo-v1')!;
    const echo = mesh.info.instances.find((i) => i.workload === 'echo-v1')!;
    const gw = mesh.info.instances.find((i) => i.role === 'gateway')!;
    const proxy = (id: string): ProxyProcess => ({
      name: id.split('.')[0],
      pid: pidOf(mesh.stateDir, `${id}.proxy`),
    });
    const appPorts = up.appPorts!;
    const body = path.join(mesh.stateDir, 'grpc-message.bin');
    writeFileSync(body, grpcFrame());
    const grpc = (url: string, authority?: string): Target => ({
      url: `${url}${ECHO_PATH}`,
      ...(authority ? { authority } : {}),
      headers: { 'content-type': 'application/grpc', te: 'trailers' },
      body,
      h2: true,
    });
    const grpcOnly: Protocol[] = ['HTTP/2'];
    const tcpOnly: Protocol[] = ['TCP'];
    const noHttp = (): Target => {
      throw new Error('a TCP scenario has no HTTP target');
    };
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
      {
        name: 'grpc-direct',
        what: 'load generator → gRPC echo (grpc-js, h2c): the gRPC baseline',
        protocols: grpcOnly,
        target: () => grpc(`http://127.0.0.1:${appPortOf('grpc-echo-v1', '9100')}`),
        proxies: [],
      },
      {
        name: 'grpc-nginx',
        what: 'nginx grpc_pass (1 worker, upstream keepalive) → gRPC echo',
        protocols: grpcOnly,
        target: () => grpc(`http://127.0.0.1:${nginxPorts.grpc}`),
        proxies: [{ name: 'nginx', pid: nginxGrpc.pid }],
      },
      {
        name: 'grpc-mesh',
        what: 'client sidecar (h2c) → mTLS HTTP/2 → server sidecar → h2c → gRPC echo',
        protocols: grpcOnly,
        target: () => grpc(`http://127.0.0.1:${client.outboundPort}`, 'grpc-echo:9100'),
        proxies: [proxy(client.id), proxy(grpcEcho.id)],
      },
      {
        name: 'tcp-direct',
        what: 'load generator → TCP echo: the TCP baseline',
        protocols: tcpOnly,
        target: noHttp,
        tcp: { host: '127.0.0.1', port: appPortOf('echo-v1', '9000') },
        proxies: [],
      },
      {
        name: 'tcp-nginx',
        what: "nginx's stream module (1 worker) → TCP echo",
        protocols: tcpOnly,
        target: noHttp,
        tcp: { host: '127.0.0.1', port: nginxPorts.tcp },
        proxies: [{ name: 'nginx', pid: nginxStream.pid }],
      },
      {
        name: 'tcp-mesh',
        what: 'CONNECT to the client sidecar → mTLS → server sidecar → TCP echo',
        protocols: tcpOnly,
        target: noHttp,
        tcp: { host: '127.0.0.1', port: client.outboundPort!, connect: 'echo:9000' },
        proxies: [proxy(client.id), proxy(echo.id)],
      },
    ];

    // A baseline runs whenever a scenario of its family does: every other figure is relative to it.
    const wanted = (name: string) =>
      o.only.includes(name) || o.only.some((n) => name === baselines(n).direct);
    const scenarios = o.only.length ? all.filter((s) => wanted(s.name)) : all;
    pin(mesh.child.pid!, LOAD_CPU);
    for (const s of scenarios) for (const p of s.proxies) pin(p.pid, PROXY_CPU);
    const runsOn = (s: Scenario, p: Protocol) => (s.protocols ?? ['HTTP/1.1', 'HTTP/2']).includes(p);
    for (const s of scenarios) {
      if (s.tcp) await tcpLoad(s.tcp, { rps: 100, connections: 1, seconds: 0.2, cpu: LOAD_CPU });
      else if (runsOn(s, 'HTTP/1.1')) await check(s.target(false));
      else await checkGrpc(s.target(true));
    }
    const protocols: Protocol[] = [
      ...o.protocols,
      ...(scenarios.some((s) => s.tcp) ? (['TCP'] as const) : []),
    ];

    const results: RunResult[] = [];
    for (let round = 1; round <= o.rounds; round++) {
      for (const protocol of protocols) {
        const h2 = protocol === 'HTTP/2';
        for (const s of scenarios.filter((s) => runsOn(s, protocol))) {
          const load = loadFor(s, h2);
          await load.rate({ rps: 1000, connections: 16, seconds: o.warmupSeconds, cpu: LOAD_CPU });
          const pids = s.proxies.map((p) => processTree(p.pid));
          const cpu0 = pids.map((tree) => tree.reduce((a, pid) => a + cpuSeconds(pid), 0));
          const t0 = performance.now();
          const rate = await load.rate({ rps: 1000, connections: 16, seconds: o.rateSeconds, cpu: LOAD_CPU });
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
          const max = await load.max({ connections: 16, seconds: o.maxSeconds, cpu: LOAD_CPU });
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
    await Promise.all([nginx.stop(), nginxGrpc.stop(), nginxStream.stop()]);
    ports.release();
    await stopMesh(mesh.child);
    await rm(mesh.stateDir, { recursive: true, force: true });
  }
}

interface Load {
  rate(o: { rps: number; connections: number; seconds: number; cpu: number }): Promise<RateResult>;
  max(o: { connections: number; seconds: number; cpu: number }): Promise<MaxResult>;
}

/** h2load and wrk for HTTP, the ping-pong generator for TCP, behind one shape. */
function loadFor(s: Scenario, h2: boolean): Load {
  const tcp = s.tcp;
  if (!tcp) {
    const t = s.target(h2);
    return { rate: (o) => fixedRate(t, o), max: (o) => maxThroughput(t, o) };
  }
  return {
    async rate(o) {
      const r = await tcpLoad(tcp, o);
      return {
        requests: r.messages,
        failed: r.failed,
        rps: r.rps,
        p50: r.p50,
        p90: r.p90,
        p99: r.p99,
        p999: r.p99,
      };
    },
    async max(o) {
      const r = await tcpLoad(tcp, { ...o, rps: 0 });
      return { rps: r.rps, requests: r.messages, failed: r.failed };
    },
  };
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
