// The request pipeline of one proxy, in its fixed phases:
//   parse/normalize → route → upstream (load balance, pool, timeout) → response → telemetry.
// Later phases (authenticate, authorize, waf, rate limit, fault, retries) slot in between without
// changing the shape. Every response the proxy makes itself carries a response flag and the rule that
// made it, in a header, the access log and the metrics.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import http2 from 'node:http2';
import type { RedirectAction, Route } from '../../compile/snapshot.ts';
import type { Logger } from '../../lib/log.ts';
import type { IstioMetrics } from '../../telemetry/istio.ts';
import type { ProxyConfig } from '../config.ts';
import type { PeerTls } from '../listeners.ts';
import { encodePeer, type PeerInfo, RequestTelemetry, UNKNOWN_PEER } from '../telemetry.ts';
import { H1Pool } from '../upstream/h1-pool.ts';
import type { PeerPool } from '../upstream/peer-pool.ts';
import { bodyLength, type Downstream, ResponseBody, relay } from './downstream.ts';
import { downstreamHeaders, FLAGS_HEADER, PEER_HEADER, RULE_HEADER, upstreamHeaders } from './headers.ts';
import { normalizeRequestTarget } from './normalize.ts';
import { CompiledRouteTable, RequestView } from './route-table.ts';

export interface PipelineDeps {
  config(): ProxyConfig | undefined;
  self: PeerInfo;
  peers: PeerPool;
  /** Where the app listens for a workload port. */
  appPort(workloadPort: number): number;
  metrics: IstioMetrics;
  log: Logger;
  accessLog: boolean;
}

/** Per-exchange state; one object, no per-phase closures. */
class Exchange {
  readonly start = performance.now();
  flags = '-';
  code = 0;
  rule = '';
  service = 'unknown';
  peer: PeerInfo = UNKNOWN_PEER;
  requestBytes = 0;
  responseBytes = 0;
  authority = '';
  path = '';
  /** A gateway's client: outside the mesh. */
  edge = false;
  mtls = false;
  requestId: string | undefined;
  readonly down: Downstream;
  constructor(down: Downstream) {
    this.down = down;
  }
  /** Counts response body bytes for telemetry; bound once, handed to relay. */
  readonly count = (n: number): void => {
    this.responseBytes += n;
  };
}

/** Envoy-like bodies for the proxy's own answers, by response flag. */
const FLAG_TEXT: Record<string, string> = {
  DPE: 'bad request',
  NR: 'no route',
  NC: 'no configuration yet',
  UH: 'no healthy upstream',
  UF: 'upstream connect error',
  UC: 'upstream connection termination',
  UT: 'upstream request timeout',
};

export class Pipeline {
  private readonly deps: PipelineDeps;
  /** Keep-alive connections to the app, per workload port. */
  private readonly apps = new Map<number, H1Pool>();

  /** Who we are, as the peer header says it: the same for every request. */
  private readonly selfHeader: string;
  private readonly telemetry: RequestTelemetry;

  constructor(deps: PipelineDeps) {
    this.deps = deps;
    this.selfHeader = encodePeer(deps.self);
    this.telemetry = new RequestTelemetry(deps.metrics, deps.self);
  }

  /** The proxy answers by itself: flag and rule go to the client, the log and the metrics. */
  private local(ex: Exchange, status: number, flags: string, rule: string, body?: string): void {
    ex.code = status;
    ex.flags = flags;
    ex.rule = rule;
    if (ex.down.headersSent) {
      ex.down.destroy();
      return;
    }
    const text = body ?? `${FLAG_TEXT[flags] ?? 'error'}\n`;
    const headers: OutgoingHttpHeaders = {
      'content-type': 'text/plain',
      [FLAGS_HEADER]: flags,
      'content-length': Buffer.byteLength(text),
    };
    // Inside the mesh the caller may learn which rule answered; at the edge that stays in the log.
    if (!ex.edge) headers[RULE_HEADER] = rule;
    ex.down.respond(status, headers, text);
    ex.responseBytes = Buffer.byteLength(text);
    this.deps.log.info('proxy response', {
      code: status,
      flags,
      rule,
      authority: ex.authority,
      path: ex.path,
    });
  }

  /**
   * A request the HTTP/1.1 codec refused before it became an exchange (malformed, ambiguous, too
   * slow). The client got `status` with flag DPE; this logs it with its TRL_HTTP_* code and counts it.
   */
  protocolError(reporter: 'source' | 'destination', status: number, rule: string, mtls: boolean): void {
    this.telemetry.record(reporter, UNKNOWN_PEER, {
      service: 'unknown',
      code: status,
      flags: 'DPE',
      mtls,
      durationMs: 0,
      requestBytes: 0,
      responseBytes: 0,
    });
    this.deps.log.info('proxy response', { code: status, flags: 'DPE', rule });
  }

  private refuse(
    ex: Exchange,
    reporter: 'source' | 'destination',
    status: number,
    flags: string,
    rule: string,
  ): void {
    this.local(ex, status, flags, rule);
    this.track(ex, reporter);
  }

  // ---- outbound / gateway ----------------------------------------------------

  /**
   * A request from the app (sidecar outbound) or from a client (gateway). `authorityHint` is the
   * CONNECT target when the request came through a tunnel.
   */
  outbound(down: Downstream, tableName: string, edge: boolean, authorityHint?: string): void {
    const ex = new Exchange(down);
    ex.edge = edge;
    let target = down.target;
    let authority = authorityHint ?? down.authority;
    if (target.startsWith('http://')) {
      // Absolute form: the app used us as its HTTP proxy.
      const slash = target.indexOf('/', 7);
      authority = slash < 0 ? target.slice(7) : target.slice(7, slash);
      target = slash < 0 ? '/' : target.slice(slash);
    }
    ex.authority = authority.toLowerCase();
    const norm = normalizeRequestTarget(target);
    if (!norm.ok) {
      this.refuse(ex, 'source', 400, 'DPE', `normalize: ${norm.reason}`);
      return;
    }
    ex.path = norm.path;
    const cfg = this.deps.config();
    if (!cfg) {
      this.refuse(ex, 'source', 503, 'NC', 'proxy has no configuration yet');
      return;
    }
    const table = cfg.routeTables.get(tableName);
    const vh = table?.virtualHost(ex.authority);
    if (!vh) {
      this.refuse(ex, 'source', 404, 'NR', `no virtual host for ${ex.authority} in ${tableName}`);
      return;
    }
    const view = new RequestView(norm.path, norm.query, down.method, 'http', ex.authority, down.headers);
    const route = CompiledRouteTable.route(vh, view);
    if (!route) {
      this.refuse(ex, 'source', 404, 'NR', `no route matched in ${vh.name}`);
      return;
    }
    ex.rule = route.origin;
    if (route.action.type === 'direct') {
      ex.code = route.action.status;
      const body = route.action.body ?? '';
      down.respond(
        route.action.status,
        { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) },
        body,
      );
      this.track(ex, 'source');
      return;
    }
    if (route.action.type === 'redirect') {
      const location = redirectLocation(route.action, authority, norm.path + norm.query);
      ex.code = route.action.status;
      down.respond(route.action.status, { location, 'content-length': 0 }, '');
      this.track(ex, 'source');
      return;
    }
    if (route.action.clusters.length === 0) {
      this.refuse(ex, 'source', 503, 'UH', `every destination of ${route.origin} has weight 0`);
      return;
    }
    const clusterName = pickWeighted(route);
    const cluster = cfg.clusters.get(clusterName)!;
    ex.service = cluster.cluster.service ?? 'unknown';
    const ep = cluster.lb.pick();
    if (!ep) {
      this.refuse(ex, 'source', 503, 'UH', `no healthy upstream in ${clusterName} (${route.origin})`);
      return;
    }
    ex.peer = cluster.peerOf(ep);
    if (cluster.cluster.tls.mode !== 'ISTIO_MUTUAL') {
      this.refuse(ex, 'source', 503, 'UF', `cluster ${clusterName} is not a mesh cluster`);
      return;
    }
    const tls = cluster.cluster.tls;
    const headers = upstreamHeaders(down.headers, { clientAddress: down.remoteAddress, proto: 'http' });
    ex.requestId = headers['x-request-id'] as string;
    headers[PEER_HEADER] = this.selfHeader;
    const timeoutMs = route.action.timeoutMs;
    if (down.protocol === 'HTTP/1.1') {
      headers.host = authority;
      const pool = this.deps.peers.h1(ep, tls.sni, tls.identities);
      const timeout = timeoutMs ? { ms: timeoutMs, rule: route.origin } : undefined;
      this.forwardH1(ex, pool, norm.path + norm.query, headers, `${ep.address}:${ep.port}`, timeout);
      this.track(ex, 'source');
      return;
    }
    headers[':method'] = down.method;
    headers[':path'] = norm.path + norm.query;
    headers[':authority'] = authority;
    headers[':scheme'] = 'http';
    let stream: http2.ClientHttp2Stream;
    try {
      const session = this.deps.peers.session(ep, tls.sni, tls.identities);
      stream = session.request(headers, { endStream: !down.hasBody });
      if (down.hasBody) down.body.pipe(stream);
    } catch (err) {
      this.refuse(ex, 'source', 503, 'UF', `connect to ${ep.address}:${ep.port}: ${(err as Error).message}`);
      return;
    }
    const timer = timeoutMs
      ? setTimeout(() => {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          this.local(ex, 504, 'UT', `timeout ${timeoutMs}ms of ${route.origin}`);
        }, timeoutMs)
      : undefined;
    stream.once('response', (h) => {
      ex.code = Number(h[':status']);
      const out = downstreamHeaders(h as IncomingHttpHeaders);
      // A rule named by a proxy further in is as internal as our own.
      if (ex.edge) delete out[RULE_HEADER];
      down.respond(ex.code, out);
      relay(stream, down, bodyLength(down.method, ex.code, h as IncomingHttpHeaders), ex.count);
    });
    stream.on('error', (err) => {
      if (ex.code && ex.flags !== '-') return;
      const connectFailed =
        !ex.code && (stream.session?.connecting || (err as NodeJS.ErrnoException).code === 'ECONNREFUSED');
      this.local(
        ex,
        connectFailed ? 503 : 502,
        connectFailed ? 'UF' : 'UC',
        `${ep.address}:${ep.port}: ${err.message}`,
      );
    });
    stream.once('close', () => {
      if (timer) clearTimeout(timer);
      if (!ex.code && ex.flags === '-') {
        const code = stream.rstCode;
        this.local(ex, 502, 'UC', `upstream reset (code ${code}) by ${ep.address}:${ep.port}`);
      }
    });
    this.track(ex, 'source', stream);
  }

  // ---- inbound -------------------------------------------------------------

  /** A request from another proxy over mTLS — or in plaintext where PERMISSIVE allows — for the app. */
  inbound(down: Downstream, peer: PeerTls): void {
    const ex = new Exchange(down);
    ex.authority = down.authority.toLowerCase();
    ex.mtls = peer.identity !== undefined;
    ex.peer = this.telemetry.peer(headerValue(down.headers[PEER_HEADER]), peer.identity);
    const norm = normalizeRequestTarget(down.target);
    if (!norm.ok) {
      this.refuse(ex, 'destination', 400, 'DPE', `normalize: ${norm.reason}`);
      return;
    }
    ex.path = norm.path;
    const cfg = this.deps.config();
    if (!cfg?.inbound) {
      this.refuse(ex, 'destination', 503, 'NC', 'proxy has no inbound configuration yet');
      return;
    }
    // Over mTLS the client proxy names the service port in the SNI
    // (`outbound_.<port>_.<subset>_.<host>`); a plaintext client only in its Host header.
    const service =
      peer.service ?? (peer.identity === undefined ? cfg.inboundService(ex.authority) : undefined);
    const targetPort = service
      ? cfg.inboundByService.get(service)
      : cfg.inbound.ports.length === 1
        ? cfg.inbound.ports[0]
        : undefined;
    if (targetPort === undefined) {
      const what = peer.sni ? `SNI ${peer.sni}` : `host ${ex.authority || '<none>'}`;
      this.refuse(ex, 'destination', 404, 'NR', `no inbound service for ${what}`);
      return;
    }
    if (peer.identity === undefined && cfg.inboundMtls(targetPort) === 'STRICT') {
      this.refuse(
        ex,
        'destination',
        403,
        'DPE',
        `plaintext to port ${targetPort}, which requires mTLS (STRICT)`,
      );
      return;
    }
    ex.service = service ? service.slice(0, service.lastIndexOf(':')) : 'unknown';
    const headers = upstreamHeaders(down.headers, undefined);
    headers.host = down.authority;
    this.forwardH1(ex, this.app(targetPort), norm.path + norm.query, headers, `inbound|${targetPort}||`);
    this.track(ex, 'destination');
  }

  /**
   * Sends the request on a keep-alive HTTP/1.1 connection and relays the answer: to the app
   * (inbound), or to a peer proxy over mTLS when the request came in as HTTP/1.1 (outbound).
   */
  private forwardH1(
    ex: Exchange,
    pool: H1Pool,
    path: string,
    headers: OutgoingHttpHeaders,
    upstream: string,
    timeout?: { ms: number; rule: string },
  ): void {
    const down = ex.down;
    let body: ResponseBody | undefined;
    // Set once the upstream's side is over: its connection may then serve another exchange.
    let finished = false;
    let timer: NodeJS.Timeout | undefined;
    const up = pool.request(down.method, path, headers, down.hasBody, {
      onHead: (status, h) => {
        ex.code = status;
        const out = downstreamHeaders(h);
        // A rule named by a proxy further in is as internal as our own.
        if (ex.edge) delete out[RULE_HEADER];
        down.respond(status, out);
        body = new ResponseBody(down, bodyLength(down.method, status, h), ex.count);
      },
      onData: (c) => {
        if (body!.data(c)) return true;
        down.onDrain(() => {
          if (!finished) up.resume();
        });
        return false;
      },
      onEnd: () => {
        finished = true;
        clearTimeout(timer);
        body?.end();
      },
      onError: (err, stage) => {
        finished = true;
        clearTimeout(timer);
        if (stage === 'response' || ex.code) {
          down.destroy();
          return;
        }
        const connect = stage === 'connect';
        this.local(ex, connect ? 503 : 502, connect ? 'UF' : 'UC', `${upstream}: ${err.message}`);
      },
    });
    if (timeout) {
      timer = setTimeout(() => {
        if (finished) return;
        finished = true;
        up.abort();
        this.local(ex, 504, 'UT', `timeout ${timeout.ms}ms of ${timeout.rule}`);
      }, timeout.ms);
    }
    if (down.hasBody) {
      down.body.on('data', (c: Buffer) => {
        if (!up.write(c)) {
          down.body.pause();
          up.onDrain(() => down.body.resume());
        }
      });
      down.body.once('end', () => up.end());
    }
    down.onClose(() => {
      clearTimeout(timer);
      if (!finished) up.abort();
    });
  }

  private app(workloadPort: number): H1Pool {
    let pool = this.apps.get(workloadPort);
    if (!pool) {
      pool = H1Pool.loopback(this.deps.appPort(workloadPort));
      this.apps.set(workloadPort, pool);
    }
    return pool;
  }

  // ---- telemetry -------------------------------------------------------------

  /** Telemetry is recorded once the downstream response is done, whoever answered. */
  private track(ex: Exchange, reporter: 'source' | 'destination', stream?: http2.ClientHttp2Stream): void {
    ex.down.onClose(() => {
      if (stream && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      if (!ex.code) ex.flags = 'DC'; // the client went away before any response
      this.record(ex, reporter);
    });
  }

  private record(ex: Exchange, reporter: 'source' | 'destination'): void {
    const durationMs = performance.now() - ex.start;
    this.telemetry.record(reporter, ex.peer, {
      service: ex.service,
      code: ex.code,
      flags: ex.flags,
      mtls: ex.mtls,
      durationMs,
      requestBytes: Number(ex.down.headers['content-length'] ?? 0) || 0,
      responseBytes: ex.responseBytes,
    });
    if (this.deps.accessLog) {
      this.deps.log.info('access', {
        reporter,
        authority: ex.authority,
        path: ex.path,
        code: ex.code,
        flags: ex.flags,
        rule: ex.rule,
        durationMs: Math.round(durationMs * 1000) / 1000,
        requestId: ex.requestId ?? headerValue(ex.down.headers['x-request-id']),
      });
    }
  }

  close(): void {
    for (const pool of this.apps.values()) pool.close();
  }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

/** Istio's HTTPRedirect: every part not given keeps the request's own. */
function redirectLocation(a: RedirectAction, authority: string, pathAndQuery: string): string {
  const scheme = a.scheme ?? 'http';
  const colon = authority.lastIndexOf(':');
  const reqHost = colon > 0 && !authority.endsWith(']') ? authority.slice(0, colon) : authority;
  const reqPort = colon > 0 && !authority.endsWith(']') ? authority.slice(colon + 1) : undefined;
  const host = a.authority ?? reqHost;
  const port =
    a.port === 'protocol-default'
      ? undefined
      : a.port !== undefined
        ? String(a.port)
        : a.authority
          ? undefined
          : reqPort;
  const defaultPort = scheme === 'https' ? '443' : '80';
  let path = pathAndQuery;
  if (a.uri !== undefined) {
    const q = pathAndQuery.indexOf('?');
    path = a.uri + (q >= 0 ? pathAndQuery.slice(q) : '');
  }
  return `${scheme}://${host}${port && port !== defaultPort ? `:${port}` : ''}${path}`;
}

/** Weighted choice among a route's clusters; weights are relative. */
function pickWeighted(route: Route): string {
  if (route.action.type !== 'forward') throw new Error('not a forward route');
  const cs = route.action.clusters;
  if (cs.length === 1) return cs[0].cluster;
  let total = 0;
  for (const c of cs) total += c.weight;
  let r = Math.random() * total;
  for (const c of cs) {
    r -= c.weight;
    if (r < 0) return c.cluster;
  }
  return cs[cs.length - 1].cluster;
}
