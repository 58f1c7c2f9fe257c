// The cluster layer: the load balancer picks an endpoint, the request goes to that endpoint's
// transport for its protocol, and the endpoint's in-flight count (state that outlives the snapshot)
// follows the attempt.
import type { IncomingHttpHeaders } from 'node:http';
import type { ClusterRuntime } from './cluster.ts';
import {
  type Dispatch,
  type DispatchHandler,
  failed,
  type UpstreamCall,
  UpstreamFailure,
} from './dispatch.ts';
import type { EndpointState } from './state.ts';

export interface Transports {
  'HTTP/1.1': Dispatch;
  'HTTP/2': Dispatch;
}

/** `origin` (the route) completes the explanation when no endpoint is left. */
export function balance(
  cluster: ClusterRuntime,
  origin: string,
  /** Per endpoint, in the order of `cluster.endpoints`. */
  transports: readonly Transports[],
): Dispatch {
  const none = new UpstreamFailure(
    'no-healthy-upstream',
    `no healthy upstream in ${cluster.cluster.name} (${origin})`,
  );
  return (req, handler) => {
    const ep = cluster.lb.pick();
    if (!ep) return failed(handler, none);
    req.endpoint = ep;
    ep.state.active++;
    const counted = new InFlight(ep.state, handler);
    counted.call = transports[ep.index][req.protocol](req, counted);
    return counted;
  };
}

class InFlight implements DispatchHandler, UpstreamCall {
  private readonly state: EndpointState;
  private readonly handler: DispatchHandler;
  call: UpstreamCall | undefined;
  private over = false;
  constructor(state: EndpointState, handler: DispatchHandler) {
    this.state = state;
    this.handler = handler;
  }
  private done(): void {
    if (this.over) return;
    this.over = true;
    this.state.active--;
  }
  onHead(status: number, headers: IncomingHttpHeaders): void {
    this.handler.onHead(status, headers);
  }
  onData(chunk: Buffer): boolean {
    return this.handler.onData(chunk);
  }
  onEnd(): void {
    this.done();
    this.handler.onEnd();
  }
  onError(failure: UpstreamFailure): void {
    this.done();
    this.handler.onError(failure);
  }
  resume(): void {
    this.call?.resume();
  }
  abort(): void {
    this.done();
    this.call?.abort();
  }
}
