// A supervised child process: restarted with backoff when it dies, stopped with SIGTERM then SIGKILL.
// It never outlives the supervisor, even a SIGKILLed one: it starts under `setpriv --pdeathsig KILL`,
// and as root in a PID namespace of its own (`unshare --pid --fork --kill-child`), so the kernel
// kills its whole tree when its first process dies.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { backoffDelay } from '../lib/backoff.ts';
import type { Logger } from '../lib/log.ts';

export interface ProcessSpec {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
  /** The unprivileged user it runs as (when the supervisor is root); else the supervisor's own. */
  user?: { uid: number; gid: number };
  /** The network namespace it runs in (`ip netns exec`, which also mounts its /etc/hosts). */
  netns?: string;
  /** Runs in a PID namespace of its own when root (its pid inside is 1): for what does not publish its pid. */
  pidNamespace?: boolean;
  /** Opens the netns's /proc/net/nf_conntrack as fd 3 before dropping to `user` (capture.ts). */
  conntrackFd?: boolean;
  /** Holds the pid of the running process, rewritten at every restart. */
  pidFile?: string;
  /** Called before every (re)start, e.g. to announce or to prepare files. */
  beforeStart?: () => Promise<void>;
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
}

function installed(tool: string): boolean {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let tools: { setpriv: boolean; unshare: boolean } | undefined;

/**
 * The command line that starts `spec`: root's goes through a PID namespace, then the netns, then the
 * user switch (setpriv, since the steps before need root); others only get the parent-death signal.
 */
export function containedCommand(spec: ProcessSpec): { command: string; args: string[]; pidns: boolean } {
  tools ??= { setpriv: installed('setpriv'), unshare: installed('unshare') };
  const root = process.getuid?.() === 0;
  let argv = [spec.command, ...spec.args];
  if (root && spec.user)
    argv = [
      'setpriv',
      `--reuid=${spec.user.uid}`,
      `--regid=${spec.user.gid}`,
      '--clear-groups',
      // Changing the uid clears the parent-death signal `unshare --kill-child` set: set it again.
      '--pdeathsig',
      'KILL',
      '--',
      ...argv,
    ];
  if (spec.conntrackFd)
    argv = ['sh', '-c', 'exec 3</proc/net/nf_conntrack && exec "$@"', 'conntrack', ...argv];
  if (spec.netns) argv = ['ip', 'netns', 'exec', spec.netns, ...argv];
  const pidns = root && spec.pidNamespace === true && tools.unshare && tools.setpriv;
  if (pidns) argv = ['unshare', '--pid', '--fork', '--kill-child', '--', ...argv];
  if (tools.setpriv) argv = ['setpriv', '--pdeathsig', 'KILL', '--', ...argv];
  return { command: argv[0], args: argv.slice(1), pidns };
}

/** The forked child of `unshare --fork`: the process that execs into the command (PID 1 of its namespace). */
async function forkedChild(pid: number): Promise<number | undefined> {
  for (let i = 0; i < 100; i++) {
    try {
      const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
      if (kids) return Number(kids.split(' ')[0]);
    } catch {
      return undefined;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

/** Whether `pid` handles SIGTERM: the init of a PID namespace ignores a signal it has no handler for. */
function catchesTerm(pid: number): boolean {
  try {
    const line = /^SigCgt:\s*([0-9a-f]+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return line ? (BigInt(`0x${line[1]}`) & (1n << 14n)) !== 0n : true;
  } catch {
    return true;
  }
}

export class Supervised {
  readonly spec: ProcessSpec;
  private child?: ChildProcess;
  private out?: WriteStream;
  private stopping = false;
  private failures = 0;
  private startedAt = 0;
  private timer?: NodeJS.Timeout;
  restarts = 0;
  /** How many times the process has exited (crashes and stops alike). */
  exits = 0;
  private readonly log: Logger;

  constructor(spec: ProcessSpec, log: Logger) {
    this.spec = spec;
    this.log = log;
  }

  /** The command's own pid (inside `unshare`, the forked child), once known. */
  private inner?: number;

  get pid(): number | undefined {
    return this.inner ?? this.child?.pid;
  }

  async start(): Promise<void> {
    await this.spec.beforeStart?.();
    this.out ??= createWriteStream(this.spec.logFile, { flags: 'a' });
    this.startedAt = Date.now();
    const { command, args, pidns } = containedCommand(this.spec);
    const root = process.getuid?.() === 0;
    const child = spawn(command, args, {
      cwd: this.spec.cwd,
      env: this.spec.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(!root && this.spec.user && { uid: this.spec.user.uid, gid: this.spec.user.gid }),
    });
    this.child = child;
    this.inner = undefined;
    if (pidns && child.pid) this.inner = await forkedChild(child.pid);
    if (this.spec.pidFile && this.pid) await writeFile(this.spec.pidFile, `${this.pid}\n`);
    child.stdout?.pipe(this.out, { end: false });
    child.stderr?.pipe(this.out, { end: false });
    child.on('error', (err) =>
      this.log.error('cannot start process', { process: this.spec.name, error: err.message }),
    );
    child.on('exit', (code, signal) => {
      this.child = undefined;
      this.exits++;
      this.spec.onExit?.(code, signal);
      if (this.stopping) return;
      // A process that ran a while before dying starts its backoff afresh.
      if (Date.now() - this.startedAt > 30_000) this.failures = 0;
      const delay = backoffDelay(this.failures++, 500, 10_000);
      this.log.warn('process exited; restarting', {
        process: this.spec.name,
        code,
        signal,
        restartInMs: delay,
      });
      this.timer = setTimeout(() => {
        this.restarts++;
        this.start().catch((err) =>
          this.log.error('restart failed', { process: this.spec.name, error: String(err) }),
        );
      }, delay);
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      // `unshare` does not pass signals on: the command itself is told. A SIGTERM it does not catch
      // would end it anyway, but as a namespace's init it would ignore it: SIGKILL is the same then.
      const inner = this.inner;
      const kill = (sig: NodeJS.Signals) => {
        try {
          if (inner) process.kill(inner, sig);
          else child.kill(sig);
        } catch {
          child.kill('SIGKILL');
        }
      };
      kill(inner && !catchesTerm(inner) ? 'SIGKILL' : 'SIGTERM');
      const t = setTimeout(() => kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    }
    this.out?.end();
  }
}
