// The proxy's sockets: the outbound listener (the app's HTTP proxy, CONNECT tunnels included), the
// mTLS inbound listener, and one plain listener per Gateway server port.
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parseOutboundSni } from '../compile/hosts.ts';
import { peerIdentity } from '../lib/spiffe.ts';
import type { CredentialStore } from './agent/credentials.ts';
import type { DownstreamRequest, DownstreamResponse, Pipeline } from './http/pipeline.ts';

const TUNNEL = Symbol('trellis.tunnel');
const PEER = Symbol('trellis.peer');

export function listen(
  server: http.Server | http2.Http2SecureServer,
  host: string,
  port: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

const SESSIONS = Symbol('trellis.sessions');
type TrackedServer = (http.Server | http2.Http2SecureServer) & { [SESSIONS]?: Set<http2.ServerHttp2Session> };

/**
 * Graceful drain: stop accepting, close idle connections, send HTTP/2 GOAWAY so peers open new
 * streams elsewhere while in-flight ones finish; whatever is still open after `graceMs` is cut.
 */
export function closeServer(server: TrackedServer, graceMs = 5000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      (server as http.Server).closeAllConnections?.();
      for (const s of server[SESSIONS] ?? []) s.destroy();
    }, graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    (server as http.Server).closeIdleConnections?.();
    for (const s of server[SESSIONS] ?? []) s.close();
  });
}

/**
 * The app's calls arrive here: absolute-form requests (`GET http://reviews:9080/...`), or CONNECT
 * tunnels — Node's env-proxy fetch tunnels even plain-HTTP requests — inside which we parse HTTP and
 * route it like any other request, so the app never talks to a peer directly.
 */
export function outboundServer(pipeline: Pipeline): http.Server {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const hint = (req.socket as Socket & { [TUNNEL]?: string })[TUNNEL];
    pipeline.outbound(req, res, 'outbound', false, hint);
  });
  server.on('connect', (req, socket: Socket & { [TUNNEL]?: string }, head) => {
    socket[TUNNEL] = req.url ?? '';
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) socket.unshift(head);
    server.emit('connection', socket);
  });
  return server;
}

/** `table` is updated in place when a snapshot renames the route table of this port. */
export function gatewayServer(pipeline: Pipeline, table: { name: string }): http.Server {
  return http.createServer({ keepAliveTimeout: 60_000 }, (req, res) =>
    pipeline.outbound(req, res, table.name, true),
  );
}

export interface PeerTls {
  identity?: string;
  sni?: string;
  /** `host:port` of the service the client proxy asked for in its SNI. */
  service?: string;
}

/**
 * Mutual TLS only: a client without a certificate from the mesh's trust bundle never completes the
 * handshake, so plaintext and foreign clients are refused before any byte reaches the app.
 */
export function inboundServer(pipeline: Pipeline, creds: CredentialStore): http2.Http2SecureServer {
  const server = http2.createSecureServer({
    ...creds.tlsOptions(),
    allowHTTP1: true,
    requestCert: true,
    rejectUnauthorized: true,
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  (server as TrackedServer)[SESSIONS] = sessions;
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  // Identity and SNI are per connection: worked out once here, not per request.
  server.on('secureConnection', (socket: TLSSocket & { [PEER]?: PeerTls }) => {
    socket.setNoDelay(true);
    const sni = (socket as TLSSocket & { servername?: string }).servername || undefined;
    const target = sni ? parseOutboundSni(sni) : undefined;
    socket[PEER] = {
      identity: peerIdentity(socket.getPeerCertificate()),
      sni,
      service: target && `${target.host}:${target.port}`,
    };
  });
  server.on('request', (req, res) => {
    // For HTTP/2 the compat socket proxies property reads to the TLS socket.
    const peer = (req.socket as unknown as { [PEER]?: PeerTls })[PEER] ?? {};
    pipeline.inbound(req as unknown as DownstreamRequest, res as unknown as DownstreamResponse, peer);
  });
  creds.onChange(() => server.setSecureContext(creds.tlsOptions()));
  return server;
}
