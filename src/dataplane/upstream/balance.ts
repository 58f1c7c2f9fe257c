// The cluster layer: the load balancer picks an endpoint, the request goes to that endpoint's
// transport for its protocol, and the endpoint's in-flight count (state that outlives the snapshot)
// follows the attempt, as does outlier detection, which learns from each answer.
import type { IncomingHttpHeaders } from 'node:http';
import { grpcToHttpStatus } from '../http/grpc.ts';
import type { ClusterRuntime, EndpointRuntime } from './cluster.ts';
import {
  type Dispatch,
  type DispatchHandler,
  failed,
  type Layer,
  type UpstreamCall,
  UpstreamFailure,
  type UpstreamRequest,
} from './dispatch.ts';
import type { OutlierDetector } from './outlier.ts';

export interface Transports {
  'HTTP/1.1': Dispatch;
  'HTTP/2': Dispatch;
}

/**
 * `origin` (the route) completes the explanation when no endpoint is left. `perTry` wraps each try
 * to an endpoint (the per-try timeout), below this layer so outlier detection sees its timeouts.
 */
export function balance(
  cluster: ClusterRuntime,
  origin: string,
  /** Per endpoint, in the order of `cluster.endpoints`. */
  endpointTransports: readonly Transports[],
  perTry?: Layer,
): Dispatch {
  const transports = perTry
    ? endpointTransports.map((t) => ({ 'HTTP/1.1': perTry(t['HTTP/1.1']), 'HTTP/2': perTry(t['HTTP/2']) }))
    : endpointTransports;
  const none = new UpstreamFailure(
    'no-healthy-upstream',
    `no healthy upstream in ${cluster.cluster.name} (${origin})`,
  );
  const pool = cluster.cluster.connectionPool;
  const upgrade = pool?.h2Upgrade === true;
  const http1Only = pool?.http1Only === true;
  return (req, handler) => {
    const ep = pick(cluster, req);
    if (!ep) return failed(handler, none);
    req.endpoint = ep;
    ep.state.active++;
    const state = cluster.state;
    state.active++;
    // Envoy's upstream_rq_total: every try sent to an endpoint.
    state.stats.upstream_rq_total++;
    const counted = new InFlight(ep, cluster, handler);
    // An upgrade goes on HTTP/1.1 whatever the policy: a connection of its own that the 101 switches.
    const protocol =
      req.upgrade !== undefined ? 'HTTP/1.1' : upgrade ? 'HTTP/2' : http1Only ? 'HTTP/1.1' : req.protocol;
    counted.call = transports[ep.index][protocol](req, counted);
    return counted;
  };
}

function pick(cluster: ClusterRuntime, req: UpstreamRequest): EndpointRuntime | undefined {
  return req.tried ? cluster.pickAvoiding(req, req.tried) : cluster.pick(req);
}

class InFlight implements DispatchHandler, UpstreamCall {
  private readonly ep: EndpointRuntime;
  private readonly cluster: ClusterRuntime;
  private readonly outlier: OutlierDetector | undefined;
  private readonly handler: DispatchHandler;
  call: UpstreamCall | undefined;
  private over = false;
  constructor(ep: EndpointRuntime, cluster: ClusterRuntime, handler: DispatchHandler) {
    this.ep = ep;
    this.cluster = cluster;
    this.outlier = cluster.outlier;
    this.handler = handler;
  }
  private done(): void {
    if (this.over) return;
    this.over = true;
    this.ep.state.active--;
    this.cluster.state.active--;
  }
  onHead(status: number, headers: IncomingHttpHeaders): void {
    if (this.outlier) {
      this.outlier.connected(this.ep.state);
      // As Envoy: a gRPC status in the head (a trailers-only answer) counts as the HTTP status it
      // maps to; one in the trailers does not count.
      const g = headers['grpc-status'];
      this.outlier.response(this.ep.state, typeof g === 'string' ? grpcToHttpStatus(g) : status);
    }
    this.handler.onHead(status, headers);
  }
  onData(chunk: Buffer): boolean {
    return this.handler.onData(chunk);
  }
  onEnd(trailers?: IncomingHttpHeaders): void {
    this.done();
    this.handler.onEnd(trailers);
  }
  onError(failure: UpstreamFailure): void {
    this.done();
    const k = failure.kind;
    if (this.outlier && !failure.afterHead && (k === 'connect' || k === 'reset' || k === 'timeout'))
      this.outlier.failure(this.ep.state);
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
