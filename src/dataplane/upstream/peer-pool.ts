// HTTP/2 sessions over mutual TLS to other proxies, one per (endpoint, SNI), multiplexing every
// request to that endpoint. Secure naming: the server must present an identity the destination
// service runs as, or the handshake fails.
import http2, { type ClientHttp2Session } from 'node:http2';
import tls, { type PeerCertificate } from 'node:tls';
import type { Endpoint } from '../../compile/snapshot.ts';
import { peerIdentity } from '../../lib/spiffe.ts';
import type { CredentialStore } from '../agent/credentials.ts';

export class PeerPool {
  private readonly sessions = new Map<string, ClientHttp2Session>();
  private readonly creds: CredentialStore;
  private readonly connectTimeoutMs: number;

  constructor(creds: CredentialStore, connectTimeoutMs = 10_000) {
    this.creds = creds;
    this.connectTimeoutMs = connectTimeoutMs;
  }

  session(ep: Endpoint, sni: string, identities: readonly string[]): ClientHttp2Session {
    const key = `${ep.address}:${ep.port}/${sni}`;
    const existing = this.sessions.get(key);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const allowed = new Set(identities);
    const tlsOptions: tls.ConnectionOptions = {
      ...this.creds.tlsOptions(),
      host: ep.address,
      port: ep.port,
      servername: sni,
      ALPNProtocols: ['h2'],
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const id = peerIdentity(cert);
        if (id && allowed.has(id)) return undefined;
        return new Error(
          `secure naming: peer identity ${id ?? '<none>'} is not one of ${[...allowed].join(', ')}`,
        );
      },
    };
    const session = http2.connect(`https://${ep.address}:${ep.port}`, {
      createConnection: () => {
        const socket = tls.connect(tlsOptions);
        // Small frames (HEADERS, WINDOW_UPDATE) must not wait on Nagle for the peer's delayed ACK.
        socket.setNoDelay(true);
        return socket;
      },
    });
    const forget = () => {
      if (this.sessions.get(key) === session) this.sessions.delete(key);
    };
    session.on('close', forget);
    session.on('goaway', forget);
    session.on('error', forget);
    const timer = setTimeout(() => {
      if (!session.connecting) return;
      session.destroy(new Error(`connect timeout after ${this.connectTimeoutMs}ms`));
    }, this.connectTimeoutMs);
    timer.unref();
    session.once('connect', () => clearTimeout(timer));
    this.sessions.set(key, session);
    return session;
  }

  /** Sessions to endpoints no longer in the snapshot are closed gracefully. */
  retain(keep: Set<string>): void {
    for (const [key, s] of this.sessions) {
      if (!keep.has(key)) {
        this.sessions.delete(key);
        s.close();
      }
    }
  }

  static key(ep: Endpoint, sni: string): string {
    return `${ep.address}:${ep.port}/${sni}`;
  }

  close(): void {
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
  }
}
