// Retries (VirtualService `retries`, or Istio's default policy), in the spirit of undici's retry
// handler: each try's response head is held until it is known not to be retried; a retriable answer
// or failure is dropped and the request sent again after Envoy's jittered backoff, to an endpoint not
// tried yet where there is one. A request whose body has streamed past what can be replayed is never
// sent again. When tries run out on a retriable outcome, it goes downstream with flag URX.
import type { IncomingHttpHeaders } from 'node:http';
import type { RetryPolicy } from '../../compile/snapshot.ts';
import type {
  Dispatch,
  DispatchHandler,
  UpstreamCall,
  UpstreamFailure,
  UpstreamRequest,
} from './dispatch.ts';
import { ReplayableBody } from './replay-body.ts';
import type { ClusterState } from './state.ts';

/** Request bodies up to this size are kept for a retry (Envoy's per-request buffer limit). */
export const RETRY_BUFFER_BYTES = 64 * 1024;

/** gRPC status codes by the retryOn condition that names them. */
const GRPC: Record<string, string> = {
  cancelled: '1',
  'deadline-exceeded': '4',
  'resource-exhausted': '8',
  internal: '13',
  unavailable: '14',
};

/** The policy's conditions, settled once per route. */
export class RetryConditions {
  private readonly any5xx: boolean;
  private readonly gateway: boolean;
  private readonly reset: boolean;
  private readonly connect: boolean;
  private readonly refused: boolean;
  private readonly conflict: boolean;
  private readonly rateLimited: boolean;
  private readonly headersNamed: boolean;
  private readonly codes: ReadonlySet<number>;
  private readonly grpc: ReadonlySet<string>;

  constructor(p: RetryPolicy) {
    const on = new Set(p.on);
    this.any5xx = on.has('5xx');
    this.gateway = on.has('gateway-error');
    this.reset = on.has('reset');
    // Before the request went out: for this proxy, a connection that never came up.
    this.connect = on.has('connect-failure') || on.has('reset-before-request');
    this.refused = on.has('refused-stream');
    this.conflict = on.has('retriable-4xx');
    this.rateLimited = on.has('envoy-ratelimited');
    this.headersNamed = on.has('retriable-headers');
    this.codes = on.has('retriable-status-codes') ? new Set(p.statusCodes) : new Set();
    this.grpc = new Set(p.on.filter((c) => c in GRPC).map((c) => GRPC[c]));
  }

  /** Whether an upstream answer is retried. */
  response(status: number, h: IncomingHttpHeaders, req: UpstreamRequest): boolean {
    if (this.any5xx && status >= 500) return true;
    if (this.gateway && status >= 502 && status <= 504) return true;
    if (this.conflict && status === 409) return true;
    if (this.codes.has(status)) return true;
    if (this.rateLimited && h['x-envoy-ratelimited'] !== undefined) return true;
    if (this.grpc.size > 0) {
      const g = h['grpc-status'];
      if (typeof g === 'string' && this.grpc.has(g)) return true;
    }
    if (this.headersNamed) {
      // Istio has no field for the header list: the client names them, as Envoy allows.
      const names = req.headers['x-envoy-retriable-header-names'];
      if (typeof names === 'string')
        for (const n of names.split(',')) if (h[n.trim().toLowerCase()] !== undefined) return true;
    }
    return false;
  }

  /** Whether a try that got no answer is retried. Overflow and no endpoint never are. */
  failure(f: UpstreamFailure): boolean {
    switch (f.kind) {
      case 'connect':
        return this.connect || this.any5xx || this.gateway || this.reset;
      case 'reset':
        return this.any5xx || this.gateway || this.reset || (this.refused && f.refused);
      case 'timeout':
        return this.any5xx || this.gateway || this.reset;
      default:
        return false;
    }
  }
}

export interface RetryOptions {
  policy: RetryPolicy;
  conditions: RetryConditions;
  /** Counters and the retry breaker of the cluster tries go to. */
  state: ClusterState;
  /** connectionPool.http.maxRetries; absent: unlimited, as Istio sets it. */
  maxRetries: number | undefined;
  /** retryBudget: retries in flight as a share of requests in flight, with a floor. */
  budget: { percent: number; minRetryConcurrency: number } | undefined;
  random?: () => number;
}

/** Envoy's jittered backoff before retry `n` (1, 2, ...): up to (2^n - 1) × base, capped at 10 × base. */
export function backoff(baseMs: number, n: number, random: () => number): number {
  return Math.floor(random() * Math.min(baseMs * (2 ** n - 1), baseMs * 10));
}

export function withRetries(o: RetryOptions): (next: Dispatch) => Dispatch {
  return (next) => (req, handler) => new RetryCall(next, req, handler, o);
}

class RetryCall implements UpstreamCall, DispatchHandler {
  private readonly next: Dispatch;
  private readonly req: UpstreamRequest;
  private readonly handler: DispatchHandler;
  private readonly o: RetryOptions;
  private readonly body: ReplayableBody | undefined;
  private current: UpstreamCall | undefined;
  private retries = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Counted in the cluster's retries in flight. */
  private retrying = false;
  private aborted = false;
  private passing = false;

  constructor(next: Dispatch, req: UpstreamRequest, handler: DispatchHandler, o: RetryOptions) {
    this.next = next;
    this.req = req;
    this.handler = handler;
    this.o = o;
    // An upgrade's body is read only after a 101, which is never retried: each try may take it as is.
    if (req.body && req.upgrade === undefined) {
      this.body = new ReplayableBody(req.body, RETRY_BUFFER_BYTES);
      req.body = this.body.attempt();
    }
    this.send();
  }

  private send(): void {
    this.req.attempts++;
    this.current = this.next(this.req, this);
  }

  /** Whether another try may go: tries left, a replayable body, and room under the retry breaker. */
  private mayRetry(): boolean {
    const o = this.o;
    if (this.retries >= o.policy.attempts || this.aborted) return false;
    if (this.body && !this.body.replayable) return false;
    const s = o.state;
    const inFlight = this.retrying ? s.activeRetries - 1 : s.activeRetries;
    let limit = o.maxRetries ?? Number.POSITIVE_INFINITY;
    if (o.budget)
      limit = Math.min(limit, Math.max(o.budget.minRetryConcurrency, (o.budget.percent / 100) * s.active));
    if (inFlight >= limit) {
      s.stats.upstream_rq_retry_overflow++;
      return false;
    }
    return true;
  }

  private retry(): void {
    const o = this.o;
    this.retries++;
    o.state.stats.upstream_rq_retry++;
    if (!this.retrying) {
      this.retrying = true;
      o.state.activeRetries++;
    }
    const ep = this.req.endpoint;
    if ((o.policy.ignorePreviousHosts || o.policy.remoteLocalities) && ep) {
      this.req.tried ??= [];
      this.req.tried.push(ep);
    }
    this.req.endpoint = undefined;
    this.req.remoteLocalities = o.policy.remoteLocalities === true;
    if (this.body) this.req.body = this.body.attempt();
    this.req.bodyStarted = false;
    this.req.fresh = false;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        if (!this.aborted) this.send();
      },
      backoff(o.policy.backoffMs, this.retries, o.random ?? Math.random),
    );
  }

  private settle(): void {
    if (!this.retrying) return;
    this.retrying = false;
    this.o.state.activeRetries--;
  }

  onHead(status: number, headers: IncomingHttpHeaders): void {
    // A 101 has switched the connection to the new protocol: there is nothing left to send again.
    if (!this.passing && status !== 101 && this.o.conditions.response(status, headers, this.req)) {
      if (this.mayRetry()) {
        this.current?.abort();
        this.retry();
        return;
      }
      if (this.retries >= this.o.policy.attempts) {
        this.req.retriesExhausted = true;
        this.o.state.stats.upstream_rq_retry_limit_exceeded++;
      }
    } else if (this.retries > 0) this.o.state.stats.upstream_rq_retry_success++;
    this.passing = true;
    this.handler.onHead(status, headers);
  }
  onData(chunk: Buffer): boolean {
    return this.handler.onData(chunk);
  }
  onEnd(trailers?: IncomingHttpHeaders): void {
    this.settle();
    this.handler.onEnd(trailers);
  }
  onError(failure: UpstreamFailure): void {
    if (!this.passing && !failure.afterHead && this.o.conditions.failure(failure)) {
      if (this.mayRetry()) {
        this.retry();
        return;
      }
      if (this.retries >= this.o.policy.attempts) {
        failure.retriesExhausted = true;
        this.o.state.stats.upstream_rq_retry_limit_exceeded++;
      }
    }
    this.settle();
    this.handler.onError(failure);
  }
  resume(): void {
    this.current?.resume();
  }
  abort(): void {
    this.aborted = true;
    if (this.timer) clearTimeout(this.timer);
    this.settle();
    this.current?.abort();
  }
}
