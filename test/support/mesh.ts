// Runs `trellis up` as a user would (a child process) and drives it over HTTP and the CLI.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { MeshInfo } from '../../src/platform/local-runtime.ts';
import { adminHeaders } from './platform.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CLI = path.join(ROOT, 'src/cli/main.ts');

export interface ProxyStatusReply {
  revision: number;
  convergence: { revision: number; ms: number; proxies: number } | null;
  proxies: {
    id: string;
    status: string;
    healthy: boolean;
    connectedAt: string;
    latest?: { version: string; revision: number };
    acked?: { version: string; revision: number; pushMs: number };
    nack?: { version: string; reason: string };
  }[];
}

/** Thrown inside an `until` condition to stop waiting at once. */
export class Fatal extends Error {}

export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
      if (err instanceof Fatal) throw err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export class Mesh {
  readonly stateDir: string;
  readonly child: ChildProcess;
  info!: MeshInfo;
  output = '';

  private constructor(stateDir: string, child: ChildProcess) {
    this.stateDir = stateDir;
    this.child = child;
    child.stdout?.on('data', (c: Buffer) => {
      this.output += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => {
      this.output += c.toString();
    });
  }

  /** `stateDir`: an existing one (e.g. one a killed `up` left); by default a new one. */
  static async up(source: string, extra: string[] = [], stateDir?: string): Promise<Mesh> {
    stateDir ??= await mkdtemp(path.join(tmpdir(), 'trellis-e2e-'));
    const child = spawn(
      process.execPath,
      [
        CLI,
        'up',
        source,
        '--state-dir',
        stateDir,
        '--gateway-port',
        '0',
        '--api-port',
        '0',
        '--xds-port',
        '0',
        // Explicit HTTP_PROXY unless a test asks for capture: fast, and the same on any machine.
        ...(extra.some((a) => a.startsWith('--capture')) ? [] : ['--capture=explicit']),
        ...extra,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const mesh = new Mesh(stateDir, child);
    await until(
      'trellis up to print that the mesh is up',
      async () => {
        if (child.exitCode !== null)
          throw new Fatal(`trellis up exited with ${child.exitCode}: ${mesh.output}`);
        return mesh.output.includes('Trellis mesh is up');
      },
      60_000,
    );
    mesh.info = JSON.parse(await readFile(path.join(stateDir, 'mesh.json'), 'utf8')) as MeshInfo;
    await mesh.converged(mesh.info.instances.length);
    return mesh;
  }

  get api(): string {
    return this.controlPlane().api;
  }

  /** Re-read every time: the control plane rewrites it when it restarts. */
  controlPlane(): MeshInfo['controlPlane'] {
    return JSON.parse(readFileSync(path.join(this.stateDir, 'control-plane.json'), 'utf8'));
  }

  get gateway(): string {
    return this.info.gateways[0];
  }

  pid(name: string): number {
    return Number(readFileSync(path.join(this.stateDir, 'pids', `${name}.pid`), 'utf8'));
  }

  instance(workload: string) {
    const i = this.info.instances.find((x) => x.workload === workload);
    if (!i) throw new Error(`no instance of ${workload}`);
    return i;
  }

  /** What an operator's API request carries: the admin credential from the state directory. */
  get auth(): Record<string, string> {
    return adminHeaders(this.controlPlane());
  }

  async status(): Promise<ProxyStatusReply> {
    const res = await fetch(`${this.api}/api/v1/proxy-status`, { headers: this.auth });
    return (await res.json()) as ProxyStatusReply;
  }

  /** Every proxy connected, healthy and running the latest snapshot, which includes `revision`. */
  async converged(proxies: number, revision = 0, timeoutMs = 30_000): Promise<ProxyStatusReply> {
    return until(
      `${proxies} proxies SYNCED at revision ≥ ${revision}`,
      async () => {
        const s = await this.status();
        const ok =
          s.proxies.length === proxies &&
          s.proxies.every((p) => p.status === 'SYNCED' && p.healthy) &&
          // A proxy whose snapshot a change did not touch keeps its older acked revision; the
          // control plane's convergence record says when every proxy runs the change.
          (s.convergence?.revision ?? 0) >= revision;
        return ok ? s : undefined;
      },
      timeoutMs,
    );
  }

  /** Runs the real CLI against this mesh. */
  cli(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [CLI, ...args, '--api', this.api], {
      cwd: ROOT,
      // As an operator would: the CLI finds the admin credential in the mesh's state directory.
      env: { ...process.env, TRELLIS_STATE_DIR: this.stateDir },
      input,
      encoding: 'utf8',
      timeout: 30_000,
    });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  async down(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(t);
  }
}

export async function page(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** Which reviews version served a productpage, from its HTML. */
export function reviewsVersion(html: string): string | undefined {
  return /Reviews served by: reviews-(v\d)-/.exec(html)?.[1];
}
