// The proxy's sockets: the outbound listener (the app's HTTP proxy, CONNECT tunnels included), the
// mTLS inbound listener, and one listener per Gateway server port (plain, or HTTPS: gateway-tls.ts).
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls, { TLSSocket } from 'node:tls';
import { parseOutboundSni } from '../compile/hosts.ts';
import { statusOf } from '../lib/codes.ts';
import { peerIdentity } from '../lib/spiffe.ts';
import type { CredentialStore } from './agent/credentials.ts';
import { type GatewayTls, routeTableOf } from './gateway-tls.ts';
import { authorityProblem } from './http/authority.ts';
import { type PeerTls, PLAINTEXT } from './http/context.ts';
import { H2Downstream } from './http/downstream.ts';
import { MAX_HEAD_BYTES, MAX_HEADERS } from './http/h1/parser.ts';
import { H1Server, type RequestHandler } from './http/h1/server.ts';
import { FLAGS_HEADER } from './http/headers.ts';
import type { Pipeline } from './http/pipeline.ts';
import { allowedUpgrade } from './http/upgrade.ts';
import type { ListenerCounters, ListenerSettings } from './listener-limits.ts';
import type { ConnectionDestination } from './tcp/proxy.ts';
import { TCP_ALPN } from './upstream/peer-pool.ts';

const PEER = Symbol('trellis.peer');
const INNER = Symbol('trellis.inner');
const SESSIONS = Symbol('trellis.sessions');
const SOCKETS = Symbol('trellis.sockets');
/** On a socket that came through a CONNECT tunnel and speaks HTTP/2 inside it: the tunnel's target. */
const TUNNEL = Symbol('trellis.tunnel');

/** The CONNECT target an HTTP/2 stream's connection came through, if any. */
export function tunnelOf(stream: http2.ServerHttp2Stream): string | undefined {
  return (stream.session?.socket as (Socket & { [TUNNEL]?: string }) | undefined)?.[TUNNEL];
}

type InnerServer = (H1Server | http2.Http2Server | tls.Server) & {
  [SESSIONS]?: Set<http2.Http2Session>;
};
/** What a proxy listens with: a socket front that hands each connection to the server that speaks it. */
export type Front = net.Server & { [INNER]?: InnerServer[]; [SOCKETS]?: Set<Socket> };

export function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Graceful drain: stop accepting, close connections as they go idle, send HTTP/2 GOAWAY so peers
 * open new streams elsewhere while in-flight ones finish; whatever is still open after `graceMs` is cut.
 */
export function closeServer(server: Front, graceMs = 5000): Promise<void> {
  const inner = server[INNER] ?? [];
  const idle = () => {
    for (const s of inner) if (s instanceof H1Server) s.closeIdleConnections();
  };
  return new Promise((resolve) => {
    const sweep = setInterval(idle, 100);
    const timer = setTimeout(() => {
      for (const s of inner) {
        if (s instanceof H1Server) s.closeAllConnections();
        for (const session of s[SESSIONS] ?? []) session.destroy();
      }
      // What no inner server holds any more: tunnels handed to the L4 path, upgraded connections.
      for (const socket of server[SOCKETS] ?? []) socket.destroy();
    }, graceMs);
    server.close(() => {
      clearTimeout(timer);
      clearInterval(sweep);
      resolve();
    });
    idle();
    for (const s of inner) {
      // An inner server never listened: close() only stops its timers, the error says just that.
      s.close(() => {});
      for (const session of s[SESSIONS] ?? []) session.close();
    }
  });
}

function trackSessions(server: http2.Http2Server & { [SESSIONS]?: Set<http2.Http2Session> }): void {
  const sessions = new Set<http2.Http2Session>();
  server[SESSIONS] = sessions;
  server.on('session', (session: http2.Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
}

type Protocol = 'tls' | 'h2c' | 'http1';
const PREFACE = Buffer.from('PRI');

/**
 * The first bytes of a connection say what it speaks: a TLS record starts with 0x16, HTTP/2 with
 * prior knowledge with its preface `PRI * HTTP/2.0`, anything else is taken for HTTP/1.x. A client
 * that has not said enough within `counters`' listener's sniff timeout is cut and counted.
 */
function sniff(
  socket: Socket,
  timeoutMs: number,
  counters: ListenerCounters,
  then: (p: Protocol) => void,
): void {
  let seen: Buffer | undefined;
  // A reset before the protocol is known has no one else to hear it.
  socket.on('error', () => socket.destroy());
  const timer = setTimeout(() => {
    if (socket.destroyed) return;
    counters.preCxTimeout.inc();
    socket.destroy();
  }, timeoutMs).unref();
  const onData = (chunk: Buffer) => {
    seen = seen ? Buffer.concat([seen, chunk]) : chunk;
    if (seen[0] !== 0x16 && seen.length < PREFACE.length && PREFACE.subarray(0, seen.length).equals(seen))
      return; // a prefix of the preface: wait for more
    clearTimeout(timer);
    socket.off('data', onData);
    socket.pause();
    socket.unshift(seen);
    then(seen[0] === 0x16 ? 'tls' : seen.subarray(0, PREFACE.length).equals(PREFACE) ? 'h2c' : 'http1');
  };
  socket.on('data', onData);
}

/**
 * HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port; with `mtls`, TLS connections go to
 * that server and plaintext is heard only while `plaintext()` says so. Without it, TLS is cut.
 * HTTP/1.1 is served on the raw socket (h1/server.ts), HTTP/2 by Node's stream API.
 */
function httpFront(
  pipeline: Pipeline,
  onRequest: RequestHandler,
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number) => void,
  opts: {
    tunnels: boolean;
    /** Who reports what this front refuses itself: the client side (source) or the server side. */
    reporter: 'source' | 'destination';
    /** With `stream`: a client proxy's TCP stream (ALPN `trellis-tcp`) goes there. */
    mtls?: { server: tls.Server; plaintext: () => boolean; stream?: (socket: TLSSocket) => void };
    tls?: GatewayTls;
    /** Transparent capture: each connection's original destination; without one it is cut. */
    destinationOf?: (socket: Socket) => ConnectionDestination | undefined;
  },
  listener: ListenerSettings,
): Front {
  const { limits } = listener;
  const { reporter } = opts;
  const h1 = new H1Server(onRequest, {
    tunnels: opts.tunnels,
    onReject: (r) =>
      pipeline.protocolError(reporter, r.status, `${r.code}: ${r.message}`, r.socket instanceof TLSSocket),
    delayedCloseMs: limits.delayedCloseMs,
    // A CONNECT tunnel leaves for the L4 path, which proxies TCP and TLS ports as bytes and hands
    // HTTP (HTTP/1.1, or HTTP/2 with prior knowledge as gRPC clients behind grpc_proxy speak) back.
    connect: opts.tunnels ? (target) => tunnelHandler(pipeline, target) : undefined,
  });
  const h2 = http2.createServer({
    // The HTTP/1.1 head limits, as Node counts them for HTTP/2: pairs include the four request
    // pseudo-headers, the size is names and values. Past either the stream is reset (ENHANCE_YOUR_CALM).
    maxHeaderListPairs: MAX_HEADERS + 4,
    // enableConnectProtocol: clients may open WebSockets with an extended CONNECT (RFC 8441).
    settings: {
      maxHeaderListSize: MAX_HEAD_BYTES,
      maxConcurrentStreams: limits.maxConcurrentStreams,
      enableConnectProtocol: true,
    },
  });
  h2.on('stream', (stream, headers, flags) => {
    // RFC 9113 §8.3.1: :authority is uri-host[:port] like Host. nghttp2 resets a stream whose
    // :authority has characters no authority has; what it lets through is checked here.
    const authority = (headers[':authority'] as string | undefined) ?? headers.host;
    const problem = authority === undefined ? null : authorityProblem(authority);
    const protocol = headers[':protocol'] as string | undefined;
    const refused = protocol !== undefined && allowedUpgrade(protocol) === undefined;
    if (problem === null && !refused) onStream(stream, headers, flags);
    else {
      const code = problem === null ? 'TRL_HTTP_UPGRADE_NOT_SUPPORTED' : 'TRL_HTTP_INVALID_HOST';
      const rule =
        problem === null
          ? `${code}: :protocol ${JSON.stringify(protocol)} is not carried: the only upgrade allowed is websocket`
          : `${code}: :authority ${JSON.stringify(authority)}: ${problem}`;
      const text = `${rule}\n`;
      stream.respond({
        ':status': statusOf(code),
        'content-type': 'text/plain',
        [FLAGS_HEADER]: 'DPE',
        'content-length': Buffer.byteLength(text),
      });
      stream.end(text);
      pipeline.protocolError(reporter, statusOf(code), rule, stream.session?.socket instanceof TLSSocket);
    }
  });
  trackSessions(h2);
  const { mtls, tls: terminated, destinationOf } = opts;
  if (opts.tunnels || destinationOf)
    pipeline.serveOutboundHttp((socket, tunnel, protocol) => {
      if (protocol === 'h2') {
        (socket as Socket & { [TUNNEL]?: string })[TUNNEL] = tunnel;
        h2.emit('connection', socket);
      } else h1.serve(socket, tunnel);
    });
  // After the handshake, the protocol the client chose says which server gets the connection.
  const serveSecure = (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') h2.emit('connection', socket);
    else if (socket.alpnProtocol === TCP_ALPN && mtls?.stream) mtls.stream(socket);
    else h1.serve(socket);
  };
  mtls?.server.on('secureConnection', serveSecure);
  const front: Front = net.createServer({ noDelay: true }, (socket) => {
    if (destinationOf) {
      const dest = destinationOf(socket);
      // Where the app was going decides: the L4 path proxies TCP and TLS, and hands HTTP back.
      if (dest) pipeline.connection(socket, dest);
      else socket.destroy();
      return;
    }
    sniff(socket, limits.sniffTimeoutMs, counters, (p) => {
      if (p === 'tls') {
        if (mtls) mtls.server.emit('connection', socket);
        else if (terminated) terminated.accept(socket);
        else socket.destroy();
      } else if ((mtls && !mtls.plaintext()) || terminated) socket.destroy();
      else if (p === 'h2c') h2.emit('connection', socket);
      else h1.serve(socket);
    });
  });
  const counters = listener.stats.guard(front, listener.name, limits);
  const sockets = new Set<Socket>();
  front[SOCKETS] = sockets;
  front.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  terminated?.bind(serveSecure, counters);
  // Node destroys a socket whose handshake fails, but only reports one that timed out.
  mtls?.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') counters.preCxTimeout.inc();
    socket.destroy();
  });
  front[INNER] = mtls ? [h1, h2, mtls.server] : [h1, h2];
  return front;
}

/**
 * The app's calls arrive here: absolute-form requests (`GET http://reviews:9080/...`), requests with
 * a mesh Host header, HTTP/2 with prior knowledge, or CONNECT tunnels — Node's env-proxy fetch tunnels
 * even plain-HTTP requests — inside which we parse HTTP and route it like any other request, so the
 * app never talks to a peer directly.
 */
export function outboundServer(pipeline: Pipeline, listener: ListenerSettings): Front {
  return httpFront(
    pipeline,
    (down, _socket, tunnel) => pipeline.outbound(down, tunnel),
    (stream, headers, flags) => pipeline.outbound(new H2Downstream(stream, headers, flags), tunnelOf(stream)),
    { tunnels: true, reporter: 'source' },
    listener,
  );
}

/**
 * The outbound listener under transparent capture (see capture.ts): the app connected to a service's
 * VIP, the netns rules redirected it here, and `destinationOf` recovers where it was going.
 */
export function capturedOutboundServer(
  pipeline: Pipeline,
  listener: ListenerSettings,
  destinationOf: (socket: Socket) => ConnectionDestination | undefined,
): Front {
  return httpFront(
    pipeline,
    (down, _socket, tunnel) => pipeline.outbound(down, tunnel),
    (stream, headers, flags) => pipeline.outbound(new H2Downstream(stream, headers, flags)),
    { tunnels: false, reporter: 'source', destinationOf },
    listener,
  );
}

/** The CONNECT target `host:port` (`[v6]:port`) as the destination the L4 path takes the tunnel to. */
function tunnelHandler(pipeline: Pipeline, target: string): ((socket: Socket) => void) | undefined {
  const colon = target.lastIndexOf(':');
  const port = Number(target.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port)) return undefined;
  const host = target.slice(0, colon);
  return (socket) => pipeline.connection(socket, { host, port });
}

/**
 * `table` is updated in place when a snapshot renames the route table of this port. With `tls` (an
 * HTTPS listener) only TLS is heard, and each connection's SNI names its server's route table.
 * Otherwise, with `creds` (a mesh proxy's certificate), sidecars may also reach the plain HTTP server
 * over mesh mutual TLS, as they reach an egress gateway: TLS connections complete a handshake with a
 * mesh certificate, the rest is plaintext HTTP as before.
 */
export function gatewayServer(
  pipeline: Pipeline,
  table: { name: string },
  listener: ListenerSettings,
  secure: { creds?: CredentialStore; tls?: GatewayTls },
): Front {
  const { creds, tls } = secure;
  const tableOf = (socket: Socket) => (tls && routeTableOf(socket)) || table.name;
  const mtls = !tls && creds ? { server: meshTlsServer(creds, listener), plaintext: () => true } : undefined;
  // A sidecar over mesh mTLS is a peer with an identity; a terminated client's certificate is not one.
  const peerFor = (socket: Socket) => (mtls ? peerOfConnection(socket) : PLAINTEXT);
  return httpFront(
    pipeline,
    (down, socket) => pipeline.gateway(down, tableOf(socket), peerFor(socket)),
    (stream, headers, flags) => {
      const socket = stream.session!.socket as Socket;
      pipeline.gateway(new H2Downstream(stream, headers, flags), tableOf(socket), peerFor(socket));
    },
    { tunnels: false, reporter: 'source', ...(tls ? { tls } : {}), ...(mtls ? { mtls } : {}) },
    listener,
  );
}

/** A TLS server that takes only clients with a certificate of the mesh's trust bundle. */
function meshTlsServer(
  creds: CredentialStore,
  listener: ListenerSettings,
  alpn: string[] = ['h2', 'http/1.1'],
): tls.Server {
  const server = tls.createServer({
    ...creds.tlsOptions(),
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: alpn,
    handshakeTimeout: listener.limits.handshakeTimeoutMs,
  });
  creds.onChange(() => server.setSecureContext(creds.tlsOptions()));
  return server;
}

/** Identity and SNI are per connection: worked out on its first request, not per request. */
function peerOfConnection(socket: Socket & { [PEER]?: PeerTls }): PeerTls {
  socket[PEER] ??= socket instanceof TLSSocket ? peerOf(socket) : PLAINTEXT;
  return socket[PEER];
}

/**
 * Mutual TLS from other proxies: a client without a certificate from the mesh's trust bundle never
 * completes the handshake. Plaintext (HTTP/1.1 or h2c) is heard only while a PeerAuthentication makes
 * some port PERMISSIVE — otherwise the connection is cut before any byte reaches the app.
 */
function peerOf(socket: TLSSocket): PeerTls {
  const sni = (socket as TLSSocket & { servername?: string }).servername || undefined;
  const target = sni ? parseOutboundSni(sni) : undefined;
  const cert = socket.getPeerCertificate();
  return {
    identity: peerIdentity(cert),
    certHash: cert.raw ? createHash('sha256').update(cert.raw).digest('hex') : undefined,
    sni,
    service: target && `${target.host}:${target.port}`,
  };
}

export function inboundServer(
  pipeline: Pipeline,
  creds: CredentialStore,
  acceptsPlaintext: () => boolean,
  listener: ListenerSettings,
): Front {
  // A client proxy's TCP streams ask for TCP_ALPN.
  const mtls = meshTlsServer(creds, listener, ['h2', 'http/1.1', TCP_ALPN]);
  return httpFront(
    pipeline,
    (down, socket) => pipeline.inbound(down, peerOfConnection(socket)),
    (stream, headers, flags) =>
      pipeline.inbound(
        new H2Downstream(stream, headers, flags),
        peerOfConnection(stream.session!.socket as Socket),
      ),
    {
      tunnels: false,
      reporter: 'destination',
      mtls: {
        server: mtls,
        plaintext: acceptsPlaintext,
        stream: (socket) => pipeline.inboundConnection(socket, peerOfConnection(socket)),
      },
    },
    listener,
  );
}
