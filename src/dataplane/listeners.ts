// The proxy's sockets: the outbound listener (the app's HTTP proxy, CONNECT tunnels included), the
// mTLS inbound listener, and one plain listener per Gateway server port.
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parseOutboundSni } from '../compile/hosts.ts';
import { peerIdentity } from '../lib/spiffe.ts';
import type { CredentialStore } from './agent/credentials.ts';
import { H1Downstream, H2Downstream } from './http/downstream.ts';
import type { Pipeline } from './http/pipeline.ts';

const TUNNEL = Symbol('trellis.tunnel');
const PEER = Symbol('trellis.peer');
const INNER = Symbol('trellis.inner');
const SESSIONS = Symbol('trellis.sessions');

type InnerServer = (http.Server | http2.Http2Server | http2.Http2SecureServer) & {
  [SESSIONS]?: Set<http2.Http2Session>;
};
/** What a proxy listens with: a socket front that hands each connection to the server that speaks it. */
export type Front = net.Server & { [INNER]?: InnerServer[] };

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
export function closeServer(server: Front | http.Server, graceMs = 5000): Promise<void> {
  const inner: InnerServer[] = (server as Front)[INNER] ?? [server as http.Server];
  const idle = () => {
    for (const s of inner) (s as http.Server).closeIdleConnections?.();
  };
  return new Promise((resolve) => {
    const sweep = setInterval(idle, 100);
    const timer = setTimeout(() => {
      for (const s of inner) {
        (s as http.Server).closeAllConnections?.();
        for (const session of s[SESSIONS] ?? []) session.destroy();
      }
    }, graceMs);
    server.close(() => {
      clearTimeout(timer);
      clearInterval(sweep);
      resolve();
    });
    idle();
    for (const s of inner) {
      // An inner server never listened: close() only stops its timers, the error says just that.
      if (s !== server) s.close(() => {});
      for (const session of s[SESSIONS] ?? []) session.close();
    }
  });
}

function trackSessions(server: InnerServer): void {
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
 * prior knowledge with its preface `PRI * HTTP/2.0`, anything else is taken for HTTP/1.x.
 */
function sniff(socket: Socket, then: (p: Protocol) => void): void {
  let seen: Buffer | undefined;
  const onData = (chunk: Buffer) => {
    seen = seen ? Buffer.concat([seen, chunk]) : chunk;
    if (seen[0] !== 0x16 && seen.length < PREFACE.length && PREFACE.subarray(0, seen.length).equals(seen))
      return; // a prefix of the preface: wait for more
    socket.off('data', onData);
    socket.pause();
    socket.unshift(seen);
    then(seen[0] === 0x16 ? 'tls' : seen.subarray(0, PREFACE.length).equals(PREFACE) ? 'h2c' : 'http1');
  };
  socket.on('data', onData);
}

/** Hands a sniffed connection to the server that speaks its protocol. */
function handOver(server: InnerServer, socket: Socket): void {
  server.emit('connection', socket);
  // Node's HTTP/1 server reads a handed-over socket only once it flows again.
  if (server instanceof http.Server) socket.resume();
}

/**
 * HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on one port; with `mtls`, TLS connections go to
 * that server and plaintext is heard only while `plaintext()` says so. Without it, TLS is cut.
 */
function httpFront(
  onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number) => void,
  mtls?: { server: http2.Http2SecureServer; plaintext: () => boolean },
): { front: Front; h1: http.Server } {
  const h1 = http.createServer({ keepAliveTimeout: 60_000, noDelay: true }, onRequest);
  // Node's HTTP server tracks its connections (idle close, header and request timeouts) from the
  // moment it listens; this one never does itself, the front listens for it.
  h1.emit('listening');
  const h2 = http2.createServer();
  h2.on('stream', onStream);
  trackSessions(h2);
  const front: Front = net.createServer({ noDelay: true }, (socket) =>
    sniff(socket, (p) => {
      if (p === 'tls') {
        if (mtls) handOver(mtls.server, socket);
        else socket.destroy();
      } else if (mtls && !mtls.plaintext()) socket.destroy();
      else handOver(p === 'h2c' ? h2 : h1, socket);
    }),
  );
  front[INNER] = mtls ? [h1, h2, mtls.server] : [h1, h2];
  return { front, h1 };
}

/**
 * The app's calls arrive here: absolute-form requests (`GET http://reviews:9080/...`), requests with
 * a mesh Host header, HTTP/2 with prior knowledge, or CONNECT tunnels — Node's env-proxy fetch tunnels
 * even plain-HTTP requests — inside which we parse HTTP and route it like any other request, so the
 * app never talks to a peer directly.
 */
export function outboundServer(pipeline: Pipeline): Front {
  const { front, h1 } = httpFront(
    (req, res) => {
      const hint = (req.socket as Socket & { [TUNNEL]?: string })[TUNNEL];
      pipeline.outbound(new H1Downstream(req, res), 'outbound', false, hint);
    },
    (stream, headers, flags) =>
      pipeline.outbound(new H2Downstream(stream, headers, flags), 'outbound', false),
  );
  h1.on('connect', (req, socket: Socket & { [TUNNEL]?: string }, head) => {
    socket[TUNNEL] = req.url ?? '';
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) socket.unshift(head);
    h1.emit('connection', socket);
  });
  return front;
}

/** `table` is updated in place when a snapshot renames the route table of this port. */
export function gatewayServer(pipeline: Pipeline, table: { name: string }): Front {
  return httpFront(
    (req, res) => pipeline.outbound(new H1Downstream(req, res), table.name, true),
    (stream, headers, flags) => pipeline.outbound(new H2Downstream(stream, headers, flags), table.name, true),
  ).front;
}

export interface PeerTls {
  identity?: string;
  sni?: string;
  /** `host:port` of the service the client proxy asked for in its SNI. */
  service?: string;
}

/**
 * Mutual TLS from other proxies: a client without a certificate from the mesh's trust bundle never
 * completes the handshake. Plaintext (HTTP/1.1 or h2c) is heard only while a PeerAuthentication makes
 * some port PERMISSIVE — otherwise the connection is cut before any byte reaches the app.
 */
function peerOf(socket: TLSSocket): PeerTls {
  const sni = (socket as TLSSocket & { servername?: string }).servername || undefined;
  const target = sni ? parseOutboundSni(sni) : undefined;
  return {
    identity: peerIdentity(socket.getPeerCertificate()),
    sni,
    service: target && `${target.host}:${target.port}`,
  };
}

export function inboundServer(
  pipeline: Pipeline,
  creds: CredentialStore,
  acceptsPlaintext: () => boolean,
): Front {
  const mtls = http2.createSecureServer({
    ...creds.tlsOptions(),
    requestCert: true,
    rejectUnauthorized: true,
  });
  trackSessions(mtls);
  mtls.on('stream', (stream, headers, flags) => {
    // Identity and SNI are per connection: worked out on its first stream, not per request.
    const session = stream.session as http2.ServerHttp2Session & { [PEER]?: PeerTls };
    session[PEER] ??= peerOf(session.socket as TLSSocket);
    pipeline.inbound(new H2Downstream(stream, headers, flags), session[PEER]);
  });
  creds.onChange(() => mtls.setSecureContext(creds.tlsOptions()));
  const plain: PeerTls = {};
  return httpFront(
    (req, res) => pipeline.inbound(new H1Downstream(req, res), plain),
    (stream, headers, flags) => pipeline.inbound(new H2Downstream(stream, headers, flags), plain),
    { server: mtls, plaintext: acceptsPlaintext },
  ).front;
}
