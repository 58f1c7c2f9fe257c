// upstream: hands the request to the route's dispatch stack (timeout → retries → circuit breaker →
// load balancer with outlier detection → per-try timeout → endpoint transport, see ../../upstream/)
// and relays the answer. Stacks are built per route and cluster when the snapshot is applied; per
// request this phase picks among weighted clusters, applies the route's rewrites and header edits,
// fires the mirror copies and streams the response back. An upgrade (WebSocket) goes the same way,
// on HTTP/1.1, unmirrored: after its 101 the relay carries the tunnel's bytes both ways.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import type { ForwardAction, HeaderOps, Route } from '../../../compile/snapshot.ts';
import type { ProxyConfig } from '../../config.ts';
import { balance, type Transports } from '../../upstream/balance.ts';
import { circuitBreaker } from '../../upstream/breaker.ts';
import type { ClusterRuntime } from '../../upstream/cluster.ts';
import {
  type Dispatch,
  type DispatchHandler,
  UpstreamFailure as Failure,
  failed,
  failureReply,
  type Layer,
  type UpstreamFailure,
  upstreamRequest,
} from '../../upstream/dispatch.ts';
import { splitAuthority } from '../../upstream/external-pool.ts';
import { RetryConditions, withRetries } from '../../upstream/retry.ts';
import { withTimeout } from '../../upstream/timeout.ts';
import type { Exchange } from '../context.ts';
import { bodyLength, ResponseBody } from '../downstream.ts';
import { countAsRead, grpcTimeoutMs } from '../grpc.ts';
import { downstreamHeaders, PEER_HEADER, RULE_HEADER, upstreamHeaders, XFCC_HEADER } from '../headers.ts';
import type { Phase, PhaseDeps, Step } from '../phase.ts';
import { applyHeaderOps, type PathRewriter, pathRewriter } from '../route-edits.ts';
import { h1Handshake } from '../upgrade.ts';

/** Writes one upstream answer downstream; a failure before the head becomes the proxy's own reply. */
class Relay implements DispatchHandler {
  private readonly ex: Exchange;
  private readonly edits: HeaderOps[] | undefined;
  private body: ResponseBody | undefined;
  /** A gRPC answer whose head carried its status: nothing follows it downstream. */
  private trailersOnly = false;
  constructor(ex: Exchange, edits: HeaderOps[] | undefined) {
    this.ex = ex;
    this.edits = edits;
  }
  onHead(status: number, h: IncomingHttpHeaders): void {
    const ex = this.ex;
    ex.code = status;
    const req = ex.upstream!;
    if (req.retriesExhausted) ex.flags = withFlag(ex.flags, 'URX');
    const out = downstreamHeaders(h);
    if (this.edits) for (const e of this.edits) applyHeaderOps(out, e);
    if (ex.responseHeaders) for (const x of ex.responseHeaders) out[x.name] = x.value;
    if (req.setCookie) applyHeaderOps(out, { add: { 'set-cookie': req.setCookie } });
    // A rule named by a proxy further in is as internal as our own.
    if (ex.site.edge && ex.peerTls.identity === undefined) delete out[RULE_HEADER];
    const grpc = ex.grpc;
    if (grpc) {
      const g = h['grpc-status'];
      if (typeof g === 'string') {
        // Trailers-only: the status is in the head, and the head ends the stream.
        grpc.status = g;
        this.trailersOnly = true;
        ex.down.respond(status, out, '');
        return;
      }
    }
    ex.down.respond(status, out);
    this.body = new ResponseBody(ex.down, bodyLength(ex.down.method, status, h), ex.count);
  }
  onData(chunk: Buffer): boolean {
    if (this.trailersOnly) return true;
    this.ex.grpc?.responses.count(chunk);
    if (this.body!.data(chunk)) return true;
    this.ex.down.onDrain(() => this.ex.call?.resume());
    return false;
  }
  onEnd(trailers?: IncomingHttpHeaders): void {
    if (trailers === undefined) {
      this.body?.end();
      return;
    }
    const g = trailers['grpc-status'];
    if (this.ex.grpc && typeof g === 'string') this.ex.grpc.status = g;
    this.body?.end(downstreamHeaders(trailers));
  }
  onError(f: UpstreamFailure): void {
    const ex = this.ex;
    const r = failureReply(f);
    if (f.afterHead) {
      ex.flags = withFlag(ex.flags, r.flags);
      ex.rule = f.message;
      ex.down.destroy();
      return;
    }
    ex.reply(r.status, withFlag(ex.flags, r.flags), f.message);
  }
}

/** Flags so far (an injected delay) and one more, comma-separated as Envoy logs them. */
function withFlag(flags: string, flag: string): string {
  return flags === '-' ? flag : `${flags},${flag}`;
}

/** One destination of a route: its cluster, its dispatch stack and its own header edits. */
interface Destination {
  cluster: ClusterRuntime;
  dispatch: Dispatch;
  requestEdits: HeaderOps[] | undefined;
  responseEdits: HeaderOps[] | undefined;
}

interface RouteTarget {
  destinations: Destination[];
  weights: number[];
  total: number;
  rewritePath: PathRewriter | undefined;
  authority: string | undefined;
  mirrors: { dispatch: Dispatch; percent: number }[] | undefined;
}

/** Weighted choice among a route's clusters; weights are relative. */
function pick(t: RouteTarget): number {
  const n = t.weights.length;
  if (n === 1) return 0;
  let r = Math.random() * t.total;
  for (let i = 0; i < n; i++) {
    r -= t.weights[i];
    if (r < 0) return i;
  }
  return n - 1;
}

/**
 * The endpoints' transports of a cluster (or why it has none), built once per snapshot however many
 * routes lead to it: an external cluster's certificate files are read once.
 */
type TransportCache = Map<ClusterRuntime, Transports[] | string>;

function transportsFor(c: ClusterRuntime, deps: PhaseDeps, cache: TransportCache): Transports[] | string {
  let ts = cache.get(c);
  if (ts) return ts;
  const cluster = c.cluster;
  const tls = cluster.tls;
  ts =
    tls.mode === 'ISTIO_MUTUAL'
      ? c.endpoints.map((ep) =>
          deps.peers.transports(ep.endpoint, tls.sni, tls.identities, cluster.connectionPool),
        )
      : deps.external.transports({ ...cluster, tls });
  cache.set(c, ts);
  return ts;
}

/**
 * The upstream stack of one route toward one cluster, outside in: the route timeout, retries, the
 * cluster's circuit breaker, the load balancer with outlier detection, the per-try timeout, the
 * endpoint's transport.
 */
function clusterDispatch(
  c: ClusterRuntime,
  action: ForwardAction,
  origin: string,
  deps: PhaseDeps,
  cache: TransportCache,
  mirror = false,
): Dispatch {
  const originalDst = c.cluster.lb.type === 'PASSTHROUGH' && c.cluster.endpoints.length === 0;
  const ts = originalDst ? [] : transportsFor(c, deps, cache);
  if (typeof ts === 'string') {
    const failure = new Failure('unsupported', ts);
    return (_req, h) => failed(h, failure);
  }
  const stats = c.state.stats;
  const retry = mirror ? undefined : action.retry;
  const perTry = retry?.perTryTimeoutMs
    ? withTimeout(
        retry.perTryTimeoutMs,
        `${retry.origin} perTryTimeout`,
        () => stats.upstream_rq_per_try_timeout++,
      )
    : undefined;
  let d = originalDst ? originalDestination(c, deps, perTry) : balance(c, origin, ts, perTry);
  const breaker = circuitBreaker(c.cluster.connectionPool, c.state);
  if (breaker) d = breaker(d);
  if (retry) {
    const pool = c.cluster.connectionPool;
    d = withRetries({
      policy: retry,
      conditions: new RetryConditions(retry),
      state: c.state,
      maxRetries: pool?.maxRetries,
      budget: pool?.retryBudget,
    })(d);
  }
  if (action.timeoutMs) d = withTimeout(action.timeoutMs, origin, () => stats.upstream_rq_timeout++)(d);
  return d;
}

/** To the host and port the request names (ServiceEntry resolution NONE, PassthroughCluster). */
function originalDestination(c: ClusterRuntime, deps: PhaseDeps, perTry: Layer | undefined): Dispatch {
  const tls = c.cluster.tls;
  if (tls.mode === 'ISTIO_MUTUAL') {
    const failure = new Failure(
      'unsupported',
      `cluster ${c.cluster.name}: mesh mutual TLS needs endpoints with identities; original destination has none`,
    );
    return (_req, h) => failed(h, failure);
  }
  const d = deps.external.originalDestination({ ...c.cluster, tls });
  return perTry ? perTry(d) : d;
}

function edits(...ops: (HeaderOps | undefined)[]): HeaderOps[] | undefined {
  const list = ops.filter((o): o is HeaderOps => o !== undefined);
  return list.length ? list : undefined;
}

function routeTargets(cfg: ProxyConfig, tableName: string, deps: PhaseDeps): Map<Route, RouteTarget> {
  const targets = new Map<Route, RouteTarget>();
  const cache: TransportCache = new Map();
  const table = cfg.snapshot.routeTables.find((t) => t.name === tableName);
  for (const vh of table?.virtualHosts ?? []) {
    for (const r of vh.routes) {
      const a = r.action;
      if (a.type !== 'forward') continue;
      targets.set(r, {
        destinations: a.clusters.map((w) => {
          const c = cfg.clusters.get(w.cluster)!;
          return {
            cluster: c,
            dispatch: clusterDispatch(c, a, r.origin, deps, cache),
            // The destination's edits first, then the route's, as Envoy applies them.
            requestEdits: edits(w.headers?.request, a.headers?.request),
            responseEdits: edits(w.headers?.response, a.headers?.response),
          };
        }),
        weights: a.clusters.map((w) => w.weight),
        total: a.clusters.reduce((s, w) => s + w.weight, 0),
        rewritePath: a.rewrite ? pathRewriter(a.rewrite) : undefined,
        authority: a.rewrite?.authority,
        mirrors: a.mirrors?.map((m) => ({
          dispatch: clusterDispatch(cfg.clusters.get(m.cluster)!, a, r.origin, deps, cache, true),
          percent: m.percent,
        })),
      });
    }
  }
  return targets;
}

function outbound(targets: Map<Route, RouteTarget>, deps: PhaseDeps): Step {
  return (ex) => {
    const t = targets.get(ex.route!)!;
    if (t.total === 0) {
      ex.reply(503, 'UH', `every destination of ${ex.route!.origin} has weight 0`);
      return false;
    }
    const dest = t.destinations[pick(t)];
    const cluster = dest.cluster.cluster;
    if (cluster.serviceName) {
      // PassthroughCluster: the host asked for is the destination service.
      ex.service = splitAuthority(ex.authority, cluster.port).host;
      ex.serviceName = cluster.serviceName;
    } else ex.service = cluster.service ?? 'unknown';
    const down = ex.down;
    const headers = upstreamHeaders(down.headers, {
      clientAddress: down.remoteAddress,
      proto: 'http',
      edge: ex.site.edge,
    });
    ex.requestId = headers['x-request-id'] as string;
    headers[PEER_HEADER] = deps.selfHeader;
    if (dest.requestEdits) for (const e of dest.requestEdits) applyHeaderOps(headers, e);
    if (t.rewritePath) ex.path = t.rewritePath(ex.path);
    if (t.authority) ex.hostHeader = t.authority;
    // A copy of a tunnel would be a second conversation with nobody on the other end.
    if (t.mirrors && down.upgrade === undefined) mirror(ex, t, headers);
    send(ex, ex.grpc ? withDeadline(ex, dest) : dest.dispatch, headers, dest.responseEdits);
    return false;
  };
}

/**
 * A gRPC client's deadline (grpc-timeout) bounds the call as the route timeout does, the shorter
 * winning: Istio sets Envoy's max_grpc_timeout to the route's timeout, or unbounded without one.
 */
function withDeadline(ex: Exchange, dest: Destination): Dispatch {
  const v = ex.down.headers['grpc-timeout'];
  const ms = typeof v === 'string' ? grpcTimeoutMs(v) : undefined;
  if (ms === undefined) return dest.dispatch;
  const stats = dest.cluster.state.stats;
  return withTimeout(
    ms,
    `${ex.route!.origin} grpc-timeout`,
    () => stats.upstream_rq_timeout++,
  )(dest.dispatch);
}

/** Envoy's shadow: the copy's authority gets `-shadow` on its host, before any port. */
function shadowAuthority(authority: string): string {
  const colon = authority.lastIndexOf(':');
  if (colon > 0 && !authority.endsWith(']'))
    return `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`;
  return `${authority}-shadow`;
}

/** Fire and forget: what the copies get back, and how fast, never touches the client's exchange. */
const DISCARD: DispatchHandler = {
  onHead() {},
  onData: () => true,
  onEnd() {},
  onError() {},
};

/** Bytes of request body a copy may hold while its upstream is slower than the real one. */
const MIRROR_BODY_BYTES = 1024 * 1024;

function mirror(ex: Exchange, t: RouteTarget, headers: OutgoingHttpHeaders): void {
  const down = ex.down;
  const source = ex.requestBody ?? (down.hasBody ? down.body : undefined);
  if (source) {
    // The real request reads through a pipe of its own, so the copies' listeners never make the
    // body flow past it before its upstream is ready.
    const own = new PassThrough();
    source.pipe(own);
    ex.requestBody = own;
  }
  for (const m of t.mirrors!) {
    if (m.percent < 100 && !(Math.random() * 100 < m.percent)) continue;
    let body: Readable | undefined;
    if (source) {
      const copy = new PassThrough();
      let held = 0;
      source.on('data', (c: Buffer) => {
        held += c.length;
        if (held > MIRROR_BODY_BYTES) copy.destroy();
        else if (!copy.write(c)) held = copy.writableLength;
        else held = 0;
      });
      source.once('end', () => copy.end());
      body = copy;
    }
    const req = upstreamRequest(
      down.protocol,
      down.method,
      ex.path + ex.query,
      shadowAuthority(ex.hostHeader),
      { ...headers },
      body,
      down.remoteAddress ?? '',
    );
    m.dispatch(req, DISCARD);
  }
}

function inbound(cfg: ProxyConfig, deps: PhaseDeps): Step {
  const by = `By=${deps.selfIdentity};Hash=`;
  // The app's transport per workload port, by the inbound cluster's protocol, settled here.
  // A Sidecar ingress listener's defaultEndpoint sends a port to another app port.
  const endpoints = cfg.inbound?.endpoints;
  const apps = new Map<number, Dispatch>();
  for (const c of cfg.snapshot.clusters)
    if (c.direction === 'inbound')
      apps.set(c.port, deps.app(endpoints?.[c.port] ?? c.port, c.http2 === true));
  return (ex) => {
    const headers = upstreamHeaders(ex.down.headers, undefined);
    // Envoy's SANITIZE_SET with Istio's details (Hash, Subject, URI): the peer the handshake verified,
    // and nothing from the client.
    const peer = ex.peerTls;
    if (peer.certHash !== undefined)
      headers[XFCC_HEADER] = `${by}${peer.certHash};Subject="";URI=${peer.identity ?? ''}`;
    const port = ex.targetPort!;
    send(ex, apps.get(port) ?? deps.app(endpoints?.[port] ?? port), headers, undefined);
    return false;
  };
}

function send(
  ex: Exchange,
  dispatch: Dispatch,
  headers: OutgoingHttpHeaders,
  responseEdits: HeaderOps[] | undefined,
): void {
  const down = ex.down;
  const upgrade = down.upgrade;
  if (upgrade !== undefined && down.protocol === 'HTTP/2') h1Handshake(headers, upgrade);
  if (ex.grpc && down.hasBody) countAsRead(down.body, ex.grpc.requests);
  const req = upstreamRequest(
    upgrade === undefined ? down.protocol : 'HTTP/1.1',
    down.method,
    ex.path + ex.query,
    ex.hostHeader,
    headers,
    upgrade === undefined ? (ex.requestBody ?? (down.hasBody ? down.body : undefined)) : down.body,
    down.remoteAddress ?? '',
    upgrade,
  );
  ex.upstream = req;
  ex.call = dispatch(req, new Relay(ex, responseEdits));
}

export const upstream: Phase = {
  name: 'upstream',
  setup({ kind, cfg, table, tableName, deps }) {
    if (kind === 'inbound') return cfg?.inbound ? inbound(cfg, deps) : undefined;
    if (!cfg || !table) return undefined;
    return outbound(routeTargets(cfg, tableName, deps), deps);
  },
};
