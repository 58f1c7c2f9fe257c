// Circuit breaking (DestinationRule `connectionPool`), per cluster as Envoy keeps it: requests in flight
// (`http2MaxRequests`), HTTP/1.1 requests holding a connection (`maxConnections`, one request per
// connection at a time) and those waiting for one (`http1MaxPendingRequests`). Past a limit the
// request is refused at once with a UO overflow, never queued without bound.
import type { ConnectionPool } from '../../compile/snapshot.ts';
import {
  type Dispatch,
  type DispatchHandler,
  failed,
  type UpstreamCall,
  UpstreamFailure,
  type UpstreamRequest,
} from './dispatch.ts';
import type { ClusterState } from './state.ts';

/** Envoy's default is unlimited (Istio sets 2^32-1); ours stays bounded. */
const MAX_PENDING = 65_536;

interface Waiting {
  req: UpstreamRequest;
  handler: DispatchHandler;
  hold: Held;
}

/** The layer over one cluster; undefined when its pool sets none of the limits. */
export function circuitBreaker(
  pool: ConnectionPool | undefined,
  state: ClusterState,
): ((next: Dispatch) => Dispatch) | undefined {
  if (!pool) return undefined;
  const { maxRequests, maxConnections } = pool;
  if (maxRequests === undefined && maxConnections === undefined && pool.maxPendingRequests === undefined)
    return undefined;
  const maxPending = Math.min(pool.maxPendingRequests ?? MAX_PENDING, MAX_PENDING);
  const queue: Waiting[] = [];
  const cluster = state.name;
  const overflow = (what: string) => new UpstreamFailure('overflow', `${what} of ${cluster} overflowed`);

  return (next) => {
    const start = (req: UpstreamRequest, handler: DispatchHandler, hold: Held): void => {
      const h1 = req.protocol === 'HTTP/1.1';
      if (h1) state.activeH1++;
      let over = false;
      const done = () => {
        if (over) return;
        over = true;
        if (h1) {
          state.activeH1--;
          // A connection is free again: the oldest waiting request takes it.
          const w = queue.shift();
          if (w) {
            state.pending--;
            start(w.req, w.handler, w.hold);
          }
        }
      };
      hold.call = next(req, {
        onHead: (s, h) => handler.onHead(s, h),
        onData: (c) => handler.onData(c),
        onEnd: (t) => {
          done();
          handler.onEnd(t);
        },
        onError: (f) => {
          done();
          handler.onError(f);
        },
      });
      hold.release = done;
    };

    return (req, handler) => {
      if (maxRequests !== undefined && state.active >= maxRequests) {
        state.stats.upstream_rq_pending_overflow++;
        return failed(handler, overflow(`max requests (${maxRequests})`));
      }
      const hold = new Held();
      if (req.protocol === 'HTTP/1.1' && maxConnections !== undefined && state.activeH1 >= maxConnections) {
        state.stats.upstream_cx_overflow++;
        if (state.pending >= maxPending) {
          state.stats.upstream_rq_pending_overflow++;
          return failed(handler, overflow(`pending requests (${maxPending})`));
        }
        state.pending++;
        state.stats.upstream_rq_pending_total++;
        const w: Waiting = { req, handler, hold };
        queue.push(w);
        hold.release = () => {
          const i = queue.indexOf(w);
          if (i >= 0) {
            queue.splice(i, 1);
            state.pending--;
          }
        };
        return hold;
      }
      start(req, handler, hold);
      return hold;
    };
  };
}

/** A request waiting for a connection, then in flight. */
class Held implements UpstreamCall {
  call: UpstreamCall | undefined;
  release: () => void = () => {};
  resume(): void {
    this.call?.resume();
  }
  abort(): void {
    this.release();
    this.call?.abort();
  }
}
