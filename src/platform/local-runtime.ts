// `trellis up`: the whole mesh on one machine. Reads the mesh file (Services, Workloads and any Istio
// resources), starts the control plane, applies the file, then every workload's app beside its sidecar
// and the gateways; supervises them all and stops them all.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ServiceSpec } from '../api/kinds/service.ts';
import { WORKLOAD_DEFAULTS, type WorkloadSpec } from '../api/kinds/workload.ts';
import { kindKey, type Resource } from '../api/resource.ts';
import { validateText } from '../api/validate.ts';
import { clusterIps } from '../compile/cluster-ips.ts';
import { serviceFqdn } from '../compile/hosts.ts';
import type { ControlPlaneInfo } from '../controlplane/control-plane.ts';
import type { InstanceRecord } from '../controlplane/registry/instances.ts';
import type { Readiness } from '../dataplane/app-health.ts';
import type { ProxyBootstrap } from '../dataplane/bootstrap.ts';
import { TrellisError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import {
  type CaptureMode,
  CaptureNetwork,
  CONTROL_PLANE_NAME,
  captureUnavailable,
  hostsFile,
  removeStaleCapture,
} from './capture-network.ts';
import { PortAllocator } from './ports.ts';
import { Supervised } from './process.ts';
import { strippedEntry } from './stripped.ts';
import { ensureSystemUser, type ProcessUser, runsAsRoot, userName } from './users.ts';

export interface MeshOptions {
  /** A mesh file, or a directory holding `mesh.yaml`. */
  source: string;
  stateDir: string;
  /** Overrides the first gateway port's hostPort; 0 gives every gateway port a free one. */
  gatewayPort?: number;
  apiPort: number;
  xdsPort: number;
  workloadCertTtl?: string;
  /** Plugged-in CA directory (Istio's cacerts layout). */
  caDir?: string;
  accessLog?: boolean;
  /** Transparent capture in a netns per instance, the explicit HTTP proxy, or the first that works. */
  capture?: CaptureMode;
  log: Logger;
}

export interface InstanceInfo {
  id: string;
  workload: string;
  namespace: string;
  role: 'sidecar' | 'gateway';
  /** Where the instance's proxy listens: its netns address under capture, else 127.0.0.1. */
  address: string;
  /** Under capture, the instance's network namespace. */
  netns?: string;
  appPort?: number;
  /** Every workload port → where the app really listens. */
  appPorts?: Record<string, number>;
  outboundPort?: number;
  inboundPort?: number;
  adminPort: number;
  gatewayPorts?: Record<string, number>;
}

/** Written to `<state>/mesh.json`: what runs where, for users and tests. */
export interface MeshInfo {
  /** How apps reach their sidecars: `netns` (transparent capture) or `explicit` (HTTP_PROXY). */
  capture: 'netns' | 'explicit';
  controlPlane: ControlPlaneInfo;
  gateways: string[];
  instances: InstanceInfo[];
}

export interface RunningMesh {
  info: MeshInfo;
  processes: Map<string, Supervised>;
  stop(): Promise<void>;
}

interface StateDirs {
  state: string;
  logs: string;
  pids: string;
  proxies: string;
}

const CLI = path.resolve(import.meta.dirname, '../cli/main.ts');

function meshFile(source: string): string {
  if (!existsSync(source))
    throw new TrellisError('TRL_FILE_NOT_FOUND', `${source}: no such file or directory`);
  if (statSync(source).isDirectory()) {
    const f = path.join(source, 'mesh.yaml');
    if (!existsSync(f))
      throw new TrellisError(
        'TRL_FILE_NOT_FOUND',
        `${source} has no mesh.yaml: pass the mesh file itself or a directory that holds one`,
      );
    return f;
  }
  return source;
}

/**
 * What the runtime tells an app: where to listen (PORT for the first port; PORT_<number> and
 * PORT_<NAME> for each, since the runtime moves ports), its pod-like HOSTNAME, and its sidecar as
 * HTTP proxy. Hosts the app lists in its own NO_PROXY are kept.
 */
export function appEnvironment(
  spec: WorkloadSpec,
  appPorts: Record<string, number>,
  hostname: string,
  outboundPort: number | undefined,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...withoutAdminCredential(process.env), ...spec.env, HOSTNAME: hostname };
  const ports = spec.ports ?? [];
  if (ports[0]) env.PORT = String(appPorts[String(ports[0].port)]);
  for (const p of ports) {
    const real = String(appPorts[String(p.port)]);
    env[`PORT_${p.port}`] = real;
    if (p.name) env[`PORT_${p.name.toUpperCase().replaceAll('-', '_')}`] = real;
  }
  // Under capture the netns sends every connection to the sidecar: the app is told nothing.
  if (outboundPort === undefined) return env;
  // The sidecar is the app's HTTP proxy: plain names like http://reviews:9080 go through it.
  const proxy = `http://127.0.0.1:${outboundPort}`;
  const noProxy = ['localhost', '127.0.0.1', '::1', spec.env?.NO_PROXY ?? spec.env?.no_proxy]
    .filter(Boolean)
    .join(',');
  Object.assign(env, {
    HTTP_PROXY: proxy,
    http_proxy: proxy,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
    NODE_USE_ENV_PROXY: '1',
  });
  return env;
}

/**
 * Kubernetes' `$(VAR)` in args: a variable of the app's environment (PORT, PORT_HTTP, ...) is put in,
 * `$$` stands for a literal `$`, and a reference to a variable that is not set stays as written.
 */
export function expandArgs(args: string[], env: NodeJS.ProcessEnv): string[] {
  return args.map((a) =>
    a.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) =>
      name === undefined ? '$' : (env[name] ?? m),
    ),
  );
}

/** The marker in every child's environment: the next `up` on the state dir knows its leftovers by it. */
const MESH_MARK = 'TRELLIS_MESH_STATE';

/**
 * Processes a killed `up` on this state dir left (only when they outlived it, e.g. started without
 * setpriv): each recorded pid that still carries this state dir's mark is killed.
 */
function killLeftovers(pids: string, state: string, log: Logger): void {
  let files: string[];
  try {
    files = readdirSync(pids);
  } catch {
    return;
  }
  for (const f of files) {
    const pid = Number(readFileSync(path.join(pids, f), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (!environ.split('\0').includes(`${MESH_MARK}=${state}`)) continue;
    try {
      process.kill(pid, 'SIGKILL');
      log.warn('killed a process left by an earlier trellis up', { pid, process: f });
    } catch {
      // Gone meanwhile.
    }
  }
}

/** `netns` when capture can work here (or is demanded), else `explicit`, said in one line. */
async function captureMode(mode: CaptureMode, log: Logger): Promise<'netns' | 'explicit'> {
  if (mode === 'explicit') return 'explicit';
  const reason = await captureUnavailable();
  if (reason === undefined) return 'netns';
  if (mode === 'netns')
    throw new TrellisError('TRL_CAPTURE_SETUP', `--capture=netns: ${reason}; use --capture=explicit`);
  log.warn(`transparent capture unavailable (${reason}): apps use their sidecar as HTTP_PROXY`);
  return 'explicit';
}

/** The API's admin credential is the supervisor's: no app or proxy inherits it from its environment. */
export function withoutAdminCredential(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { TRELLIS_ADMIN_TOKEN: _t, TRELLIS_ADMIN_TOKEN_FILE: _f, ...rest } = env;
  return rest;
}

/**
 * Run as root, every app and proxy gets a user of its own: an app one per namespace and service
 * account (its identity), a proxy one per instance (its token is its alone). The state dir is then
 * traversable (0711) but not listable; what sits in it stays 0600 to root, except each proxy's
 * token and bootstrap file, handed to that proxy's user, and the public trust bundle.
 */
interface Users {
  app(namespace: string, serviceAccount: string): Promise<ProcessUser | undefined>;
  proxy(id: string): Promise<ProcessUser | undefined>;
}

function platformUsers(asRoot: boolean): Users {
  if (!asRoot) return { app: async () => undefined, proxy: async () => undefined };
  return {
    app: (ns, sa) => ensureSystemUser(userName(ns, sa)),
    proxy: (id) => ensureSystemUser(userName('proxy', id)),
  };
}

/** Writes a file only `user` (or, without one, the supervisor's user) can read. */
async function writePrivate(file: string, text: string, user: ProcessUser | undefined): Promise<void> {
  await rm(file, { force: true });
  await writeFile(file, text, { mode: 0o600 });
  if (user) await chown(file, user.uid, user.gid);
}

/** The Workload's readiness probe, with Kubernetes' defaults (but a 1 s period: this is a laptop). */
export function readinessOf(spec: WorkloadSpec, appPorts: Record<string, number>): Readiness | undefined {
  const ports = spec.ports ?? [];
  if (ports.length === 0) return undefined;
  const probe = spec.readinessProbe;
  const named = probe?.httpGet.port;
  const workloadPort =
    typeof named === 'number' ? named : (ports.find((p) => p.name === named) ?? ports[0]).port;
  return {
    port: appPorts[String(workloadPort)],
    path: probe?.httpGet.path,
    periodMs: (probe?.periodSeconds ?? 1) * 1000,
    timeoutMs: (probe?.timeoutSeconds ?? 1) * 1000,
    initialDelayMs: (probe?.initialDelaySeconds ?? 0) * 1000,
    failureThreshold: probe?.failureThreshold ?? 3,
  };
}

/** Every proxy connected, healthy and running its snapshot; else the laggards are named, with their logs. */
async function waitReady(
  api: string,
  auth: Record<string, string>,
  instances: InstanceInfo[],
  dirs: StateDirs,
  timeoutMs = 30_000,
): Promise<void> {
  let pending: string[] = instances.map((i) => i.id);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${api}/api/v1/proxy-status`, { headers: auth });
      const status = (await res.json()) as { proxies: { id: string; status: string; healthy: boolean }[] };
      const ready = new Set(
        status.proxies.filter((p) => p.status === 'SYNCED' && p.healthy).map((p) => p.id),
      );
      pending = instances.map((i) => i.id).filter((id) => !ready.has(id));
      if (pending.length === 0) return;
    } catch {
      // The control plane may be restarting; keep waiting.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const logs = pending.map(
    (id) => `${id} (${path.join(dirs.logs, `${id}.proxy.log`)}, ${path.join(dirs.logs, `${id}.app.log`)})`,
  );
  throw new TrellisError('TRL_MESH_NOT_READY', `not ready after ${timeoutMs / 1000}s: ${logs.join('; ')}`);
}

/**
 * Records what the supervisor starts with the control plane, which answers the credential for that
 * instance's proxy alone: the registry then takes the instance from this record, not from the proxy.
 */
async function registerInstance(
  api: string,
  auth: Record<string, string>,
  node: InstanceRecord,
): Promise<string> {
  const res = await fetch(`${api}/api/v1/instances`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ node }),
  });
  const body = (await res.json()) as { token?: string; message?: string };
  if (!res.ok || typeof body.token !== 'string')
    throw new TrellisError(
      'TRL_MESH_NOT_READY',
      `registering ${node.id} failed: ${body.message ?? res.status}`,
    );
  return body.token;
}

/** The pid of a live control plane using this state directory, if any. */
function runningControlPlane(state: string): number | undefined {
  let pid: number;
  try {
    pid = (JSON.parse(readFileSync(path.join(state, 'control-plane.json'), 'utf8')) as ControlPlaneInfo).pid;
  } catch {
    return undefined;
  }
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** The last error message in a process log (JSON lines or text). */
function lastError(log: string): string {
  const lines = log.trim().split('\n').reverse();
  for (const line of lines) {
    try {
      const rec = JSON.parse(line) as { level?: string; msg?: string; error?: string };
      if (rec.level === 'error' || rec.level === 'warn') return rec.error ?? rec.msg ?? line;
    } catch {
      if (/error/i.test(line)) return line.trim();
    }
  }
  return lines[0] ?? 'no output';
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch((err: unknown) => {
      if (err instanceof TrellisError) throw err;
      return undefined;
    });
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new TrellisError('TRL_MESH_NOT_READY', `timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startMesh(o: MeshOptions): Promise<RunningMesh> {
  const file = meshFile(o.source);
  const text = await readFile(file, 'utf8');
  const validated = validateText(text, file);
  if (validated.errors.length)
    throw new TrellisError('TRL_VALIDATION', `${file} is not valid; nothing was started`, {
      issues: validated.errors,
    });
  const workloads = validated.resources.filter(
    (r) => kindKey(r.apiVersion, r.kind) === 'trellis.dev/Workload',
  ) as Resource<WorkloadSpec>[];

  const state = path.resolve(o.stateDir);
  const running = runningControlPlane(state);
  if (running) {
    throw new TrellisError(
      'TRL_STATE_DIR_IN_USE',
      `a mesh is already running from ${state} (control plane pid ${running}): stop it first, or use another --state-dir`,
    );
  }
  const dirs: StateDirs = {
    state,
    logs: path.join(state, 'logs'),
    pids: path.join(state, 'pids'),
    proxies: path.join(state, 'proxies'),
  };
  for (const d of [dirs.logs, dirs.pids, dirs.proxies]) await mkdir(d, { recursive: true, mode: 0o700 });
  if (runsAsRoot()) {
    // Proxies run as other users and must reach their own files and the trust bundle: the dirs on the
    // way are traversable, never listable.
    await chmod(state, 0o711);
    await chmod(dirs.proxies, 0o711);
  }
  // A killed `up` may have left processes and its network behind: they go before anything starts.
  killLeftovers(dirs.pids, state, o.log);
  if (await removeStaleCapture(state))
    o.log.warn('removed the network an earlier trellis up left', { state });
  await rm(path.join(state, 'control-plane.json'), { force: true });
  // Every instance starts afresh, on new ports: endpoints remembered from an earlier run are stale,
  // and so are the instances (and credentials) the platform registered then.
  await rm(path.join(state, 'registry.json'), { force: true });
  await rm(path.join(state, 'instances.json'), { force: true });

  const processes = new Map<string, Supervised>();
  const portAllocator = new PortAllocator();
  const mode = await captureMode(o.capture ?? 'auto', o.log);
  const network: { net?: CaptureNetwork } = {};
  const stop = async () => {
    // Apps first, then their proxies, the control plane last.
    const order = (k: string) => (k.startsWith('app ') ? 0 : k.startsWith('proxy ') ? 1 : 2);
    const groups = [0, 1, 2].map((g) => [...processes].filter(([k]) => order(k) === g).map(([, p]) => p));
    for (const g of groups) await Promise.all(g.map((p) => p.stop()));
    portAllocator.release();
    await network.net?.destroy();
  };
  try {
    const services = validated.resources.filter(
      (r) => kindKey(r.apiVersion, r.kind) === kindKey('v1', 'Service'),
    ) as Resource<ServiceSpec>[];
    const info = await launch(
      o,
      file,
      text,
      workloads,
      services,
      dirs,
      processes,
      portAllocator,
      mode,
      network,
    );
    return { info, processes, stop };
  } catch (err) {
    // Half a mesh is no use: whatever started is stopped again.
    await stop();
    throw err;
  }
}

async function launch(
  o: MeshOptions,
  file: string,
  text: string,
  workloads: Resource<WorkloadSpec>[],
  services: Resource<ServiceSpec>[],
  dirs: StateDirs,
  processes: Map<string, Supervised>,
  portAllocator: PortAllocator,
  requested: 'netns' | 'explicit',
  network: { net?: CaptureNetwork },
): Promise<MeshInfo> {
  const baseDir = path.dirname(path.resolve(file));
  const node = process.execPath;
  const proxyCli = strippedEntry('src/cli/main.ts');
  const env = { ...process.env, TRELLIS_LOG_FORMAT: 'json', [MESH_MARK]: dirs.state };
  const proxyEnv = withoutAdminCredential(env);
  const users = platformUsers(runsAsRoot());

  // The control plane first: proxies need its root certificate and token.
  const cpFile = path.join(dirs.state, 'control-plane.json');
  const cpArgs = [
    CLI,
    'control-plane',
    '--state-dir',
    dirs.state,
    '--api-port',
    String(o.apiPort),
    '--xds-port',
    String(o.xdsPort),
  ];
  if (o.workloadCertTtl) cpArgs.push('--workload-cert-ttl', o.workloadCertTtl);
  if (o.caDir) cpArgs.push('--ca-dir', path.resolve(o.caDir));
  const cp = new Supervised(
    {
      name: 'control-plane',
      command: node,
      args: cpArgs,
      cwd: process.cwd(),
      env,
      logFile: path.join(dirs.logs, 'control-plane.log'),
      pidFile: path.join(dirs.pids, 'control-plane.pid'),
    },
    o.log,
  );
  processes.set('control-plane', cp);
  await cp.start();
  const cpInfo = await waitFor(
    'the control plane',
    async () => {
      if (cp.exits > 0) {
        const log = await readFile(cp.spec.logFile, 'utf8').catch(() => '');
        throw new TrellisError(
          'TRL_MESH_NOT_READY',
          `the control plane did not start: ${lastError(log)} (log: ${cp.spec.logFile})`,
        );
      }
      const info = JSON.parse(await readFile(cpFile, 'utf8')) as ControlPlaneInfo;
      return info.pid === cp.pid ? info : undefined;
    },
    30_000,
  );
  // Fixed ports keep the address stable across control-plane restarts.
  const cpPorts = { api: Number(new URL(cpInfo.api).port), xds: Number(new URL(cpInfo.xds).port) };
  cp.spec.args.splice(cp.spec.args.indexOf('--api-port') + 1, 1, String(cpPorts.api));
  cp.spec.args.splice(cp.spec.args.indexOf('--xds-port') + 1, 1, String(cpPorts.xds));

  // The supervisor is an admin: it applies the mesh file and registers each instance it starts.
  const auth = {
    authorization: `Bearer ${(await readFile(cpInfo.adminTokenFile, 'utf8')).trim()}`,
    'content-type': 'application/json',
  };
  const res = await fetch(`${cpInfo.api}/api/v1/apply`, {
    method: 'POST',
    headers: auth,
    body: JSON.stringify({ sources: [{ file, text }] }),
  });
  if (!res.ok) throw new TrellisError('TRL_VALIDATION', `applying ${file} failed: ${await res.text()}`);

  let mode = requested;
  if (mode === 'netns') {
    try {
      network.net = await CaptureNetwork.create(dirs.state, cpPorts.xds);
    } catch (err) {
      if (o.capture === 'netns') throw err;
      o.log.warn(
        `transparent capture unavailable (${(err as Error).message}): apps use their sidecar as HTTP_PROXY`,
      );
      mode = 'explicit';
    }
  }
  const net = network.net;
  // Each Service's VIP by its names, for every netns's hosts file (compile gives proxies the same map).
  const vips = [
    ...clusterIps(
      services.map((s) => ({
        fqdn: serviceFqdn(s.metadata.name, s.metadata.namespace),
        clusterIP: s.spec.clusterIP,
      })),
    ),
  ].map(([fqdn, ip]) => {
    const [name, namespace] = fqdn.split('.');
    return { name, namespace, ip };
  });
  let netIndex = 0;

  const instances: InstanceInfo[] = [];
  const gateways: string[] = [];
  let gatewayOverride = o.gatewayPort;
  for (const w of workloads) {
    const spec = w.spec;
    const role = spec.role ?? WORKLOAD_DEFAULTS.role;
    const replicas = spec.replicas ?? WORKLOAD_DEFAULTS.replicas;
    for (let i = 0; i < replicas; i++) {
      const id = `${w.metadata.name}-${i}.${w.metadata.namespace}`;
      const hostname = `${w.metadata.name}-${i}`;
      const ports = (spec.ports ?? []).map((p) => ({
        name: p.name,
        port: p.port,
        protocol: p.protocol ?? WORKLOAD_DEFAULTS.protocol,
      }));
      const captured =
        net && role === 'sidecar'
          ? await net.add(netIndex++, (address) =>
              hostsFile({ address, hostname, namespace: w.metadata.namespace }, net.bridgeAddress, vips),
            )
          : undefined;
      const inst: InstanceInfo = {
        id,
        workload: w.metadata.name,
        namespace: w.metadata.namespace,
        role,
        address: captured?.address ?? '127.0.0.1',
        netns: captured?.netns,
        // A netns of its own: Istio's ports, and the app on its real ones.
        adminPort: captured ? 15000 : await portAllocator.next(),
      };
      const appPorts: Record<string, number> = {};
      const gatewayPorts: Record<string, number> = {};
      if (captured) {
        for (const p of ports) appPorts[String(p.port)] = p.port;
        inst.appPort = ports[0]?.port;
        if (ports.length) inst.appPorts = appPorts;
        inst.outboundPort = 15001;
        inst.inboundPort = 15006;
      } else if (role === 'sidecar') {
        for (const p of ports) appPorts[String(p.port)] = await portAllocator.next();
        inst.appPort = ports[0] ? appPorts[String(ports[0].port)] : undefined;
        if (ports.length) inst.appPorts = appPorts;
        inst.outboundPort = await portAllocator.next();
        inst.inboundPort = await portAllocator.next();
      } else {
        // A container port is exposed at its hostPort; `--gateway-port` moves the first one, and 0
        // gives every gateway port a free one (parallel meshes on one machine).
        for (const p of spec.ports ?? []) {
          let hostPort = o.gatewayPort === 0 ? 0 : (p.hostPort ?? p.port);
          if (gatewayOverride !== undefined) {
            hostPort = gatewayOverride;
            gatewayOverride = undefined;
          }
          if (hostPort === 0) hostPort = await portAllocator.next();
          gatewayPorts[String(p.port)] = hostPort;
          const scheme = p.name?.startsWith('https') ? 'https' : 'http';
          gateways.push(`${scheme}://localhost:${hostPort}`);
        }
        inst.gatewayPorts = gatewayPorts;
      }
      const bootstrap: ProxyBootstrap = {
        node: {
          id,
          role,
          workload: w.metadata.name,
          namespace: w.metadata.namespace,
          serviceAccount: spec.serviceAccount ?? WORKLOAD_DEFAULTS.serviceAccount,
          labels: spec.labels ?? {},
          address: inst.address,
          ports,
          gatewayPorts: role === 'gateway' ? gatewayPorts : undefined,
        },
        trustDomain: 'cluster.local',
        controlPlane: captured ? `https://${CONTROL_PLANE_NAME}:${cpPorts.xds}` : cpInfo.xds,
        rootCertFile: cpInfo.rootCert,
        tokenFile: path.join(dirs.proxies, `${id}.token`),
        bindHost: inst.address,
        outboundPort: inst.outboundPort ?? 0,
        inboundPort: inst.inboundPort ?? 0,
        adminPort: inst.adminPort,
        appPorts,
        readiness: role === 'sidecar' ? readinessOf(spec, appPorts) : undefined,
        accessLog: o.accessLog,
        capture: captured ? { conntrackFd: 3, outboundHost: '127.0.0.1' } : undefined,
      };
      // The inbound port is the platform's choice, so it is part of the record the proxy must match.
      const record = { ...bootstrap.node, inboundPort: inst.inboundPort };
      const token = await registerInstance(cpInfo.api, auth, record);
      const proxyUser = await users.proxy(id);
      if (captured)
        await net!.capture(captured.netns, {
          // Capture needs root, and as root every proxy has a user of its own.
          proxyUid: proxyUser!.uid,
          outboundPort: inst.outboundPort!,
          inboundPort: inst.inboundPort!,
          adminPort: inst.adminPort,
        });
      await writePrivate(bootstrap.tokenFile!, `${token}\n`, proxyUser);
      const bootstrapFile = path.join(dirs.proxies, `${id}.json`);
      await writePrivate(bootstrapFile, JSON.stringify(bootstrap, null, 2), proxyUser);
      const proxy = new Supervised(
        {
          name: `proxy ${id}`,
          command: node,
          // A small young generation: a proxy's garbage is per-request and short-lived, so scavenges stay
          // cheap, and RSS under load stays near idle instead of growing by the default 3 × 16 MB.
          // (--single-threaded-gc shortened scavenges and saved ~10% CPU on a pinned core, but under
          // concurrent HTTP/2 load it left ~190 MB of native memory resident instead of ~70: not used.)
          args: ['--max-semi-space-size=2', proxyCli, 'proxy', '--bootstrap', bootstrapFile],
          cwd: process.cwd(),
          env: proxyEnv,
          user: proxyUser,
          logFile: path.join(dirs.logs, `${id}.proxy.log`),
          pidFile: path.join(dirs.pids, `${id}.proxy.pid`),
          netns: captured?.netns,
          conntrackFd: captured !== undefined,
          pidNamespace: true,
        },
        o.log,
      );
      processes.set(`proxy ${id}`, proxy);
      await proxy.start();
      if (role === 'sidecar' && spec.command) {
        const appEnv = appEnvironment(spec, appPorts, hostname, captured ? undefined : inst.outboundPort);
        const command = spec.command === 'node' ? node : spec.command;
        const app = new Supervised(
          {
            name: `app ${id}`,
            command,
            args: expandArgs(spec.args ?? [], appEnv),
            cwd: path.resolve(baseDir, spec.workingDir ?? '.'),
            env: appEnv,
            user: await users.app(
              w.metadata.namespace,
              spec.serviceAccount ?? WORKLOAD_DEFAULTS.serviceAccount,
            ),
            logFile: path.join(dirs.logs, `${id}.app.log`),
            pidFile: path.join(dirs.pids, `${id}.app.pid`),
            netns: captured?.netns,
            pidNamespace: true,
          },
          o.log,
        );
        processes.set(`app ${id}`, app);
        await app.start();
      }
      instances.push(inst);
    }
  }

  await waitReady(cpInfo.api, auth, instances, dirs);
  const info: MeshInfo = { capture: mode, controlPlane: cpInfo, gateways, instances };
  await writeFile(path.join(dirs.state, 'mesh.json'), `${JSON.stringify(info, null, 2)}\n`);
  return info;
}
