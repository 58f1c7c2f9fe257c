// The route's timeout (VirtualService `timeout`): from dispatch until the response's last byte. When it
// fires, the attempt is aborted and the caller gets a UT failure: a 504 if no head went downstream yet,
// a cut response otherwise. An upgrade's 101 disarms it: the route timeout bounds the handshake, never
// the established tunnel (Envoy's behaviour; the tunnel has the stream idle timeout instead).
import {
  type Dispatch,
  type DispatchHandler,
  type UpstreamCall,
  UpstreamFailure,
  type UpstreamRequest,
} from './dispatch.ts';

/** `fired` counts the timeouts (Envoy's upstream_rq_timeout, upstream_rq_per_try_timeout). */
export function withTimeout(ms: number, rule: string, fired?: () => void): (next: Dispatch) => Dispatch {
  const message = `timeout ${ms}ms of ${rule}`;
  return (next) => (req, handler) => new TimedCall(next, req, handler, ms, message, fired);
}

class TimedCall implements UpstreamCall, DispatchHandler {
  private readonly handler: DispatchHandler;
  private readonly timer: NodeJS.Timeout;
  private readonly call: UpstreamCall;
  private headSeen = false;
  private over = false;

  constructor(
    next: Dispatch,
    req: UpstreamRequest,
    handler: DispatchHandler,
    ms: number,
    message: string,
    fired: (() => void) | undefined,
  ) {
    this.handler = handler;
    this.timer = setTimeout(() => {
      if (this.over) return;
      this.over = true;
      fired?.();
      this.call.abort();
      handler.onError(new UpstreamFailure('timeout', message, this.headSeen));
    }, ms);
    this.call = next(req, this);
  }

  onHead(status: number, headers: Parameters<DispatchHandler['onHead']>[1]): void {
    this.headSeen = true;
    if (status === 101) clearTimeout(this.timer);
    this.handler.onHead(status, headers);
  }
  onData(chunk: Buffer): boolean {
    return this.handler.onData(chunk);
  }
  onEnd(trailers?: Parameters<DispatchHandler['onEnd']>[0]): void {
    this.over = true;
    clearTimeout(this.timer);
    this.handler.onEnd(trailers);
  }
  onError(failure: UpstreamFailure): void {
    this.over = true;
    clearTimeout(this.timer);
    this.handler.onError(failure);
  }
  resume(): void {
    this.call.resume();
  }
  abort(): void {
    this.over = true;
    clearTimeout(this.timer);
    this.call.abort();
  }
}
