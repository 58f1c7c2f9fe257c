// upstream: hands the request to the route's dispatch stack (timeout → load balancer → endpoint
// transport, see ../../upstream/) and relays the answer. Stacks are built per route and cluster when
// the snapshot is applied; per request this phase picks among weighted clusters, writes the
// upstream headers and streams the response back.
import type { IncomingHttpHeaders } from 'node:http';
import type { Route } from '../../../compile/snapshot.ts';
import type { ProxyConfig } from '../../config.ts';
import { balance, type Transports } from '../../upstream/balance.ts';
import type { ClusterRuntime } from '../../upstream/cluster.ts';
import {
  type Dispatch,
  type DispatchHandler,
  UpstreamFailure as Failure,
  failed,
  failureReply,
  type UpstreamFailure,
  upstreamRequest,
} from '../../upstream/dispatch.ts';
import { withTimeout } from '../../upstream/timeout.ts';
import type { Exchange } from '../context.ts';
import { bodyLength, ResponseBody } from '../downstream.ts';
import { downstreamHeaders, PEER_HEADER, RULE_HEADER, upstreamHeaders, XFCC_HEADER } from '../headers.ts';
import type { Phase, PhaseDeps, Step } from '../phase.ts';

/** Writes one upstream answer downstream; a failure before the head becomes the proxy's own reply. */
class Relay implements DispatchHandler {
  private readonly ex: Exchange;
  private body: ResponseBody | undefined;
  constructor(ex: Exchange) {
    this.ex = ex;
  }
  onHead(status: number, h: IncomingHttpHeaders): void {
    const ex = this.ex;
    ex.code = status;
    const out = downstreamHeaders(h);
    if (ex.responseHeaders) for (const x of ex.responseHeaders) out[x.name] = x.value;
    // A rule named by a proxy further in is as internal as our own.
    if (ex.site.edge) delete out[RULE_HEADER];
    ex.down.respond(status, out);
    this.body = new ResponseBody(ex.down, bodyLength(ex.down.method, status, h), ex.count);
  }
  onData(chunk: Buffer): boolean {
    if (this.body!.data(chunk)) return true;
    this.ex.down.onDrain(() => this.ex.call?.resume());
    return false;
  }
  onEnd(): void {
    this.body?.end();
  }
  onError(f: UpstreamFailure): void {
    const ex = this.ex;
    if (f.afterHead) {
      ex.flags = failureReply(f).flags;
      ex.rule = f.message;
      ex.down.destroy();
      return;
    }
    const r = failureReply(f);
    ex.reply(r.status, r.flags, f.message);
  }
}

interface RouteTarget {
  clusters: ClusterRuntime[];
  weights: number[];
  total: number;
  dispatch: Dispatch[];
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
 * The cluster layer for one route. The endpoints' transports are built once per cluster, however
 * many routes lead to it.
 */
function clusterDispatch(
  c: ClusterRuntime,
  deps: PhaseDeps,
  origin: string,
  transports: Map<ClusterRuntime, Transports[]>,
): Dispatch {
  const tls = c.cluster.tls;
  if (tls.mode !== 'ISTIO_MUTUAL') {
    const failure = new Failure('unsupported', `cluster ${c.cluster.name} is not a mesh cluster`);
    return (_req, h) => failed(h, failure);
  }
  let ts = transports.get(c);
  if (!ts) {
    ts = c.endpoints.map((ep) => deps.peers.transports(ep.endpoint, tls.sni, tls.identities));
    transports.set(c, ts);
  }
  return balance(c, origin, ts);
}

function routeTargets(cfg: ProxyConfig, tableName: string, deps: PhaseDeps): Map<Route, RouteTarget> {
  const targets = new Map<Route, RouteTarget>();
  const transports = new Map<ClusterRuntime, Transports[]>();
  const table = cfg.snapshot.routeTables.find((t) => t.name === tableName);
  for (const vh of table?.virtualHosts ?? []) {
    for (const r of vh.routes) {
      if (r.action.type !== 'forward') continue;
      const timeout = r.action.timeoutMs ? withTimeout(r.action.timeoutMs, r.origin) : undefined;
      const clusters = r.action.clusters.map((w) => cfg.clusters.get(w.cluster)!);
      targets.set(r, {
        clusters,
        weights: r.action.clusters.map((w) => w.weight),
        total: r.action.clusters.reduce((s, w) => s + w.weight, 0),
        dispatch: clusters.map((c) => {
          const d = clusterDispatch(c, deps, r.origin, transports);
          return timeout ? timeout(d) : d;
        }),
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
    const i = pick(t);
    ex.service = t.clusters[i].cluster.service ?? 'unknown';
    const down = ex.down;
    const headers = upstreamHeaders(down.headers, {
      clientAddress: down.remoteAddress,
      proto: 'http',
      edge: ex.site.edge,
    });
    ex.requestId = headers['x-request-id'] as string;
    headers[PEER_HEADER] = deps.selfHeader;
    send(ex, t.dispatch[i], headers);
    return false;
  };
}

function inbound(deps: PhaseDeps): Step {
  const by = `By=${deps.selfIdentity};Hash=`;
  return (ex) => {
    const headers = upstreamHeaders(ex.down.headers, undefined);
    // Envoy's SANITIZE_SET with Istio's details (Hash, Subject, URI): the peer the handshake verified,
    // and nothing from the client.
    const peer = ex.peerTls;
    if (peer.certHash !== undefined)
      headers[XFCC_HEADER] = `${by}${peer.certHash};Subject="";URI=${peer.identity ?? ''}`;
    send(ex, deps.app(ex.targetPort!), headers);
    return false;
  };
}

function send(ex: Exchange, dispatch: Dispatch, headers: ReturnType<typeof upstreamHeaders>): void {
  const down = ex.down;
  const req = upstreamRequest(
    down.protocol,
    down.method,
    ex.path + ex.query,
    ex.hostHeader,
    headers,
    ex.requestBody ?? (down.hasBody ? down.body : undefined),
  );
  ex.upstream = req;
  ex.call = dispatch(req, new Relay(ex));
}

export const upstream: Phase = {
  name: 'upstream',
  setup({ kind, cfg, table, tableName, deps }) {
    if (kind === 'inbound') return cfg?.inbound ? inbound(deps) : undefined;
    if (!cfg || !table) return undefined;
    return outbound(routeTargets(cfg, tableName, deps), deps);
  },
};
