// Test-only: one real mTLS exchange over loopback, reporting what each side saw.

import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { peerIdentity } from '../../src/lib/spiffe.ts';

export interface Side {
  key: string;
  cert: string;
  ca: string;
}

export interface Exchange {
  /** SPIFFE ID the server saw on the client cert, if the handshake completed on its side. */
  serverSawPeer?: string;
  clientSawPeer?: string;
  /** What the client read from the server: 'hello' when the connection was accepted. */
  clientReceived: string;
  serverError?: Error;
  /** Why the server refused the client cert, e.g. CERT_HAS_EXPIRED (the error itself is just a hang-up). */
  serverAuthError?: string;
  clientError?: Error;
}

/** Server requires and verifies a client cert; client verifies the server's SPIFFE ID instead of a hostname. */
export async function exchange(server: Side, client: Side, expectServerId?: string): Promise<Exchange> {
  const out: Exchange = { clientReceived: '' };
  const srv = tls.createServer({ ...server, requestCert: true, rejectUnauthorized: true });
  const serverDone = new Promise<void>((resolve) => {
    srv.on('secureConnection', (sock) => {
      out.serverSawPeer = peerIdentity(sock.getPeerCertificate());
      sock.end('hello');
      resolve();
    });
    srv.on('tlsClientError', (err, sock) => {
      out.serverError = err;
      out.serverAuthError = String(sock.authorizationError ?? '');
      resolve();
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => {
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      ...client,
      checkServerIdentity: (_host, cert) =>
        expectServerId === undefined || peerIdentity(cert) === expectServerId
          ? undefined
          : new Error(`server is ${peerIdentity(cert)}, expected ${expectServerId}`),
    });
    sock.on('secureConnect', () => {
      out.clientSawPeer = peerIdentity(sock.getPeerCertificate());
    });
    sock.on('data', (d) => {
      out.clientReceived += d;
    });
    sock.on('error', (err) => {
      out.clientError = err;
    });
    sock.on('close', () => resolve());
  });
  await serverDone;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return out;
}
