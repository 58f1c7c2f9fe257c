// Readiness of the app beside a sidecar, which decides whether its endpoint takes traffic: a periodic
// probe (Kubernetes semantics: initial delay, period, timeout, failure threshold), plus an idle
// "canary" connection to the app. When the app dies the kernel closes the canary at once and a failed
// re-probe takes the endpoint out within milliseconds: a death, not a blip, so no threshold applies.
import http from 'node:http';
import net from 'node:net';

export interface Readiness {
  /** The port the app really listens on. */
  port: number;
  /** HTTP GET path; without one, an accepted connection means ready. */
  path?: string;
  periodMs: number;
  timeoutMs: number;
  initialDelayMs: number;
  failureThreshold: number;
}

export function probe(port: number, path: string | undefined, timeoutMs: number): Promise<boolean> {
  // Without a path, Kubernetes' tcpSocket probe: an app that is not HTTP (TCP, TLS) is ready once it accepts.
  if (path === undefined) return accepts(port, timeoutMs);
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: path ?? '/', timeout: timeoutMs, agent: false },
      (res) => {
        res.resume();
        resolve((res.statusCode ?? 500) < 400);
      },
    );
    req.on('timeout', () => req.destroy());
    // Without a path, an app that answers in another protocol than HTTP/1.1 (a gRPC server that
    // speaks only HTTP/2) still accepted the connection and answered: ready.
    req.on('error', (err: NodeJS.ErrnoException) => resolve(!path && err.code?.startsWith('HPE_') === true));
  });
}

function accepts(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port, timeout: timeoutMs });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('timeout', () => done(false));
    s.once('error', () => done(false));
  });
}

export class AppHealth {
  private timer?: NodeJS.Timeout;
  private canary?: net.Socket;
  private stopped = false;
  private failures = 0;
  private readonly r: Readiness;
  private readonly report: (healthy: boolean) => void;

  constructor(r: Readiness, report: (healthy: boolean) => void) {
    this.r = r;
    this.report = report;
  }

  /** The first verdict: not ready during the initial delay. */
  async start(): Promise<boolean> {
    if (this.r.initialDelayMs > 0) {
      this.timer = setTimeout(() => this.tick(), this.r.initialDelayMs);
      return false;
    }
    const ok = await this.check();
    this.timer = setTimeout(() => this.tick(), this.r.periodMs);
    return ok;
  }

  private async check(): Promise<boolean> {
    const ok = await probe(this.r.port, this.r.path, this.r.timeoutMs);
    if (ok && !this.canary && !this.stopped) this.openCanary();
    return ok;
  }

  private async tick(): Promise<void> {
    if (await this.check()) {
      this.failures = 0;
      this.report(true);
    } else if (++this.failures >= this.r.failureThreshold) {
      this.report(false);
    }
    if (!this.stopped) this.timer = setTimeout(() => this.tick(), this.r.periodMs);
  }

  private openCanary(): void {
    const s = net.connect(this.r.port, '127.0.0.1');
    this.canary = s;
    s.on('error', () => {});
    s.on('close', () => {
      this.canary = undefined;
      // The app closed an idle connection, or died: a probe tells which.
      if (this.stopped) return;
      void this.check().then((ok) => {
        if (!ok) this.report(false);
      });
    });
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.canary?.destroy();
  }
}
