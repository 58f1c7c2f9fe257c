// A keep-alive connection the upstream closed just as a request went out on it fails with nothing
// received. A bodiless request is then sent again, once, on a new connection: the upstream never saw
// it. This is the only replay below the retry policy, and it happens before anything goes downstream.
import type {
  Dispatch,
  DispatchHandler,
  UpstreamCall,
  UpstreamFailure,
  UpstreamRequest,
} from './dispatch.ts';

export function replayStale(next: Dispatch): Dispatch {
  return (req, handler) => new ReplayCall(next, req, handler);
}

class ReplayCall implements UpstreamCall, DispatchHandler {
  private readonly next: Dispatch;
  private readonly req: UpstreamRequest;
  private readonly handler: DispatchHandler;
  private current: UpstreamCall;
  private replayed = false;

  constructor(next: Dispatch, req: UpstreamRequest, handler: DispatchHandler) {
    this.next = next;
    this.req = req;
    this.handler = handler;
    this.current = next(req, this);
  }

  onHead(status: number, headers: Parameters<DispatchHandler['onHead']>[1]): void {
    this.handler.onHead(status, headers);
  }
  onData(chunk: Buffer): boolean {
    return this.handler.onData(chunk);
  }
  onEnd(trailers?: Parameters<DispatchHandler['onEnd']>[0]): void {
    this.handler.onEnd(trailers);
  }
  onError(failure: UpstreamFailure): void {
    if (failure.stale && !this.replayed && !this.req.bodyStarted) {
      this.replayed = true;
      this.req.fresh = true;
      this.current = this.next(this.req, this);
      return;
    }
    this.handler.onError(failure);
  }
  resume(): void {
    this.current.resume();
  }
  abort(): void {
    this.current.abort();
  }
}
