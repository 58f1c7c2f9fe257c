// The HTTP/1.1 transport: a Dispatch over keep-alive connections of an H1Pool, to the app or to a
// peer proxy over mTLS. It streams the request body with backpressure and reports failures in the
// terms of dispatch.ts; replaying on a stale connection is a layer of its own (replay.ts). An upgrade
// request sends nothing after its head until the upstream answers 101; then the client's bytes follow.
import type { OutgoingHttpHeaders } from 'node:http';
import type { Dispatch, DispatchHandler, UpstreamCall, UpstreamRequest } from './dispatch.ts';
import { UpstreamFailure } from './dispatch.ts';
import { type FailureStage, type H1Pool, type ResponseHandler, StreamIdleTimeout } from './h1-pool.ts';

/** `label` names the upstream in failure messages (`10.0.0.7:15006`, `inbound|9080||`). */
export function h1Transport(pool: () => H1Pool, label: string): Dispatch {
  return (req, handler) => new H1Attempt(pool(), label, req, handler);
}

class H1Attempt implements UpstreamCall, ResponseHandler {
  private readonly handler: DispatchHandler;
  private readonly label: string;
  private readonly req: UpstreamRequest;
  private readonly up: ReturnType<H1Pool['request']>;
  /** The upstream's side is over: its connection may serve another exchange by now. */
  private finished = false;
  /** Answered 101: the upstream's end is a half-close, the connection stays the tunnel's. */
  private tunnel = false;

  constructor(pool: H1Pool, label: string, req: UpstreamRequest, handler: DispatchHandler) {
    this.handler = handler;
    this.label = label;
    this.req = req;
    const headers: OutgoingHttpHeaders = { host: req.authority, ...req.headers };
    const upgrade = req.upgrade;
    const framed = req.body !== undefined && upgrade === undefined;
    this.up = pool.request(req.method, req.path, headers, framed, this, req.fresh, upgrade);
    if (framed && !this.finished) this.sendBody();
  }

  private sendBody(): void {
    const req = this.req;
    const body = req.body!;
    req.bodyStarted = true;
    const up = this.up;
    body.on('data', (c: Buffer) => {
      req.bodyBytes += c.length;
      if (!up.write(c)) {
        body.pause();
        up.onDrain(() => body.resume());
      }
    });
    body.once('end', () => up.end());
  }

  onHead(status: number, headers: Parameters<ResponseHandler['onHead']>[1]): void {
    if (status === 101) {
      this.tunnel = true;
      if (this.req.body) this.sendBody();
    }
    this.handler.onHead(status, headers);
  }

  onData(chunk: Buffer): boolean {
    return this.handler.onData(chunk);
  }

  onEnd(): void {
    // A tunnel's upstream half-closed: aborting must still close the connection.
    if (!this.tunnel) this.finished = true;
    this.handler.onEnd();
  }

  onError(err: Error, stage: FailureStage, stale: boolean): void {
    this.finished = true;
    const kind = err instanceof StreamIdleTimeout ? 'idle' : stage === 'connect' ? 'connect' : 'reset';
    this.handler.onError(
      new UpstreamFailure(kind, `${this.label}: ${err.message}`, stage === 'response', stale),
    );
  }

  resume(): void {
    if (!this.finished) this.up.resume();
  }

  abort(): void {
    if (this.finished) return;
    this.finished = true;
    this.up.abort();
  }
}
