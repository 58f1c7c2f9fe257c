// One interface for sending a request upstream, over HTTP/1.1 or HTTP/2, in the spirit of undici's
// `dispatch(opts, handler)`. Layers are functions that take a Dispatch and return one: timeouts,
// retries, the circuit breaker, the load balancer with outlier detection, the stale-connection
// replay. A layer sees the response head before anything goes downstream: it may hold it, drop the
// attempt and dispatch again, as long as the request body can be sent again.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { EndpointRuntime } from './cluster.ts';

export interface UpstreamRequest {
  /** The upstream protocol follows the downstream one (USE_DOWNSTREAM_PROTOCOL). */
  readonly protocol: 'HTTP/1.1' | 'HTTP/2';
  readonly method: string;
  /** Path and query, normalized. */
  readonly path: string;
  readonly authority: string;
  /** Without Host or pseudo-headers: each transport writes those its own way. */
  readonly headers: OutgoingHttpHeaders;
  /** Absent for a bodiless request; the retry layer gives each try its own replay of it. */
  body: Readable | undefined;
  /**
   * The protocol an upgrade request asks for (`websocket`). Its `body` is the tunnel's bytes from the
   * client, which the transport reads only once the upstream answered 101; a 101 makes the attempt a
   * tunnel: onData and onEnd carry the upstream's bytes and its half-close.
   */
  readonly upgrade: string | undefined;
  /** Body bytes the transport sent, for telemetry (a tunnel's bytes from the client). */
  bodyBytes: number;
  /** Set by a transport once it reads the body: from then on the request cannot be sent again. */
  bodyStarted: boolean;
  /** Ask the transport for a new connection (a replay after a stale keep-alive one). */
  fresh: boolean;
  /** The endpoint the load balancer chose, for telemetry. */
  endpoint: EndpointRuntime | undefined;
  /** The client's address: consistent hashing on `useSourceIp`. */
  sourceAddress: string;
  /** Tries so far (1 + retries), for the access log. */
  attempts: number;
  /** Endpoints tried before, which a retry avoids (Envoy's previous-hosts predicate). */
  tried: EndpointRuntime[] | undefined;
  /** `retryRemoteLocalities`: a retry leaves the localities already tried, where it can. */
  remoteLocalities: boolean;
  /** Retries ran out on a retriable answer, which went downstream as it was: flag URX. */
  retriesExhausted: boolean;
  /** A consistent-hash cookie the balancer made up, for the response's Set-Cookie. */
  setCookie?: string;
}

export function upstreamRequest(
  protocol: 'HTTP/1.1' | 'HTTP/2',
  method: string,
  path: string,
  authority: string,
  headers: OutgoingHttpHeaders,
  body: Readable | undefined,
  sourceAddress = '',
  upgrade?: string,
): UpstreamRequest {
  return {
    protocol,
    method,
    path,
    authority,
    headers,
    body,
    upgrade,
    bodyBytes: 0,
    bodyStarted: false,
    fresh: false,
    endpoint: undefined,
    sourceAddress,
    attempts: 0,
    tried: undefined,
    remoteLocalities: false,
    retriesExhausted: false,
  };
}

/**
 * Why an attempt failed, in the terms the response flags use; `failureReply` maps each to its
 * status and flag in one place.
 */
export type FailureKind =
  /** No connection (for TLS, no completed handshake): UF. */
  | 'connect'
  /** The connection or stream failed after the request went out, before a response head: UC. */
  | 'reset'
  /** A timeout layer gave up: UT. */
  | 'timeout'
  /** The load balancer found no endpoint to send to: UH. */
  | 'no-healthy-upstream'
  /** The cluster's settings ask for something this proxy cannot do: UF. */
  | 'unsupported'
  /** A circuit breaker (connection pool limit) refused the request: UO. */
  | 'overflow'
  /** Nothing moved either way for the stream idle timeout (an upgraded tunnel's): SI. */
  | 'idle';

export class UpstreamFailure extends Error {
  readonly kind: FailureKind;
  /** The response head had already arrived: the client's response is cut, not replaced. */
  readonly afterHead: boolean;
  /** The request went out on a reused keep-alive connection and nothing came back. */
  readonly stale: boolean;
  /** Set by the retry layer when this was the last try it would make. */
  retriesExhausted = false;
  /** An HTTP/2 stream the upstream refused (REFUSED_STREAM) before processing it. */
  refused = false;
  constructor(kind: FailureKind, message: string, afterHead = false, stale = false) {
    super(message);
    this.kind = kind;
    this.afterHead = afterHead;
    this.stale = stale;
  }
}

const REPLY: Record<FailureKind, { status: number; flags: string }> = {
  connect: { status: 503, flags: 'UF' },
  reset: { status: 502, flags: 'UC' },
  timeout: { status: 504, flags: 'UT' },
  'no-healthy-upstream': { status: 503, flags: 'UH' },
  unsupported: { status: 503, flags: 'UF' },
  overflow: { status: 503, flags: 'UO' },
  idle: { status: 408, flags: 'SI' },
};

/** With `retriesExhausted`, the failure's own flag and URX, as Envoy reports `UF,URX`. */
export function failureReply(f: UpstreamFailure): { status: number; flags: string } {
  const r = REPLY[f.kind];
  return f.retriesExhausted ? { status: r.status, flags: `${r.flags},URX` } : r;
}

export interface DispatchHandler {
  /** Hop-by-hop headers are still there: the caller filters what it passes on. */
  onHead(status: number, headers: IncomingHttpHeaders): void;
  /** False when the client is slow: the upstream pauses until `resume()`. */
  onData(chunk: Buffer): boolean;
  /** `trailers`: what an HTTP/2 upstream sent after the body (gRPC's grpc-status, grpc-message). */
  onEnd(trailers?: IncomingHttpHeaders): void;
  /** Exactly once per attempt, instead of onEnd. */
  onError(failure: UpstreamFailure): void;
}

/** The caller's hold on an attempt in flight. */
export interface UpstreamCall {
  resume(): void;
  /** The caller is gone: stop, release the connection, call no handler method any more. */
  abort(): void;
}

export type Dispatch = (req: UpstreamRequest, handler: DispatchHandler) => UpstreamCall;

export type Layer = (next: Dispatch) => Dispatch;

/** An attempt that failed before it started. */
export function failed(handler: DispatchHandler, failure: UpstreamFailure): UpstreamCall {
  handler.onError(failure);
  return DONE;
}

const DONE: UpstreamCall = { resume() {}, abort() {} };
