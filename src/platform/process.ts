// A supervised child process: restarted with backoff when it dies, stopped with SIGTERM then SIGKILL.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
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
  /** Holds the pid of the running process, rewritten at every restart. */
  pidFile?: string;
  /** Called before every (re)start, e.g. to announce or to prepare files. */
  beforeStart?: () => Promise<void>;
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
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

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    await this.spec.beforeStart?.();
    this.out ??= createWriteStream(this.spec.logFile, { flags: 'a' });
    this.startedAt = Date.now();
    const child = spawn(this.spec.command, this.spec.args, {
      cwd: this.spec.cwd,
      env: this.spec.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(this.spec.user && { uid: this.spec.user.uid, gid: this.spec.user.gid }),
    });
    this.child = child;
    if (this.spec.pidFile && child.pid) await writeFile(this.spec.pidFile, `${child.pid}\n`);
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
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    }
    this.out?.end();
  }
}
