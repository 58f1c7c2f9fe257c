// Connections over mutual TLS to other proxies, per (endpoint, SNI). The upstream protocol follows the
// downstream one, as Envoy's USE_DOWNSTREAM_PROTOCOL: a request that came in as HTTP/2 goes out on
// one HTTP/2 session multiplexing every such request to that endpoint; one that came in as HTTP/1.1
// goes out on a keep-alive HTTP/1.1 connection, which costs a proxy far less per request than an
// HTTP/2 stream does in Node. Secure naming: the server must present an identity the destination
// service runs as, or the handshake fails.
import http2, { type ClientHttp2Session } from 'node:http2';
import tls, { type PeerCertificate } from 'node:tls';
import type { ConnectionPool, Endpoint } from '../../compile/snapshot.ts';
import { peerIdentity } from '../../lib/spiffe.ts';
import type { CredentialStore } from '../agent/credentials.ts';
import type { Transports } from './balance.ts';
import { DEFAULT_CONNECT_TIMEOUT_MS, tuneUpstreamSocket } from './connect.ts';
import { H1Pool } from './h1-pool.ts';
import { h1Transport } from './h1-transport.ts';
import { h2Transport } from './h2-transport.ts';
import { replayStale } from './replay.ts';

/** The ALPN a client proxy offers for a TCP stream; the inbound listener hands such a connection to the L4 path. */
export const TCP_ALPN = 'trellis-tcp';

interface PeerH1Pool {
  pool: H1Pool;
  /** The identities it was opened for: a snapshot that changes them gets a new pool. */
  identities: readonly string[];
  /** Its cluster's connection settings, compared the same way. */
  settings: string;
}

export class PeerPool {
  private readonly sessions = new Map<string, ClientHttp2Session>();
  private readonly pools = new Map<string, PeerH1Pool>();
  private readonly creds: CredentialStore;
  private readonly connectTimeoutMs: number;

  constructor(creds: CredentialStore, connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS) {
    this.creds = creds;
    this.connectTimeoutMs = connectTimeoutMs;
  }

  /** Opens a TLS connection that completes only with a server of one of `identities`. */
  private connect(
    ep: Endpoint,
    sni: string,
    identities: readonly string[],
    alpn: string,
    pool: ConnectionPool | undefined,
  ): tls.TLSSocket {
    const socket = tls.connect({
      ...this.creds.tlsOptions(),
      host: ep.address,
      port: ep.port,
      servername: sni,
      ALPNProtocols: [alpn],
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const id = peerIdentity(cert);
        if (id && identities.includes(id)) return undefined;
        return new Error(
          `secure naming: peer identity ${id ?? '<none>'} is not one of ${identities.join(', ')}`,
        );
      },
    });
    tuneUpstreamSocket(socket, pool, 'secureConnect', this.connectTimeoutMs);
    return socket;
  }

  /**
   * One mTLS connection carrying a proxied TCP stream (ALPN `trellis-tcp`), never pooled: its bytes
   * belong to one downstream connection. The same secure naming as for HTTP.
   */
  stream(ep: Endpoint, sni: string, identities: readonly string[], settings?: ConnectionPool): tls.TLSSocket {
    return this.connect(ep, sni, identities, TCP_ALPN, settings);
  }

  /** Keep-alive HTTP/1.1 connections to the endpoint, for requests that came in as HTTP/1.1. */
  h1(ep: Endpoint, sni: string, identities: readonly string[], settings?: ConnectionPool): H1Pool {
    const key = PeerPool.key(ep, sni);
    const existing = this.pools.get(key);
    const s = JSON.stringify(settings ?? {});
    if (existing?.identities === identities && existing.settings === s) return existing.pool;
    existing?.pool.close();
    const pool = new H1Pool(() => this.connect(ep, sni, identities, 'http/1.1', settings), 64, {
      maxRequestsPerConnection: settings?.maxRequestsPerConnection,
      idleTimeoutMs: settings?.idleTimeoutMs,
      maxConnectionDurationMs: settings?.maxConnectionDurationMs,
    });
    this.pools.set(key, { pool, identities, settings: s });
    return pool;
  }

  session(
    ep: Endpoint,
    sni: string,
    identities: readonly string[],
    settings?: ConnectionPool,
  ): ClientHttp2Session {
    const key = PeerPool.key(ep, sni);
    const existing = this.sessions.get(key);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const session = http2.connect(`https://${ep.address}:${ep.port}`, {
      createConnection: () => this.connect(ep, sni, identities, 'h2', settings),
      ...(settings?.maxConcurrentStreams ? { peerMaxConcurrentStreams: settings.maxConcurrentStreams } : {}),
    });
    const forget = () => {
      if (this.sessions.get(key) === session) this.sessions.delete(key);
    };
    session.on('close', forget);
    session.on('goaway', forget);
    session.on('error', forget);
    const ka = settings?.http2KeepAlive;
    if (ka) keepAlive(session, ka.intervalMs, ka.timeoutMs);
    this.sessions.set(key, session);
    return session;
  }

  /** The endpoint's transports for either protocol, built when a snapshot is applied. */
  transports(
    ep: Endpoint,
    sni: string,
    identities: readonly string[],
    settings?: ConnectionPool,
  ): Transports {
    const label = `${ep.address}:${ep.port}`;
    const pool = this.h1(ep, sni, identities, settings);
    return {
      'HTTP/1.1': replayStale(h1Transport(() => pool, label)),
      'HTTP/2': h2Transport(() => this.session(ep, sni, identities, settings), label),
    };
  }

  /** Connections to endpoints no longer in the snapshot are closed gracefully. */
  retain(keep: Set<string>): void {
    for (const [key, s] of this.sessions) {
      if (!keep.has(key)) {
        this.sessions.delete(key);
        s.close();
      }
    }
    for (const [key, p] of this.pools) {
      if (!keep.has(key)) {
        this.pools.delete(key);
        p.pool.close();
      }
    }
  }

  static key(ep: Endpoint, sni: string): string {
    return `${ep.address}:${ep.port}/${sni}`;
  }

  close(): void {
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
    for (const p of this.pools.values()) p.pool.close();
    this.pools.clear();
  }
}

/** `http2KeepAlive`: a PING every interval; a peer that does not answer within the timeout is gone. */
export function keepAlive(session: ClientHttp2Session, intervalMs: number, timeoutMs: number): void {
  const timer = setInterval(() => {
    // Between a destroy and its 'close' event the timer may still fire; ping would throw.
    if (session.destroyed) return;
    const dead = setTimeout(
      () => session.destroy(new Error(`no PING answer within ${timeoutMs}ms`)),
      timeoutMs,
    );
    dead.unref();
    if (!session.ping(() => clearTimeout(dead))) clearTimeout(dead);
  }, intervalMs);
  timer.unref();
  session.once('close', () => clearInterval(timer));
}
