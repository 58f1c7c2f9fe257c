// The proxies' door to the control plane (cf. istiod's 15012): mutual TLS, HTTP/2. A proxy without a
// certificate may only ask for one, with the bootstrap token; everything else needs a mesh identity.

import { timingSafeEqual } from 'node:crypto';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { type ErrorCode, statusOf } from '../lib/codes.ts';
import { errorMessage, TrellisError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { parseSpiffeId, peerIdentity } from '../lib/spiffe.ts';
import { CERTIFICATE_PATH, type CertificateRequest, PUSH_PATH } from '../push/protocol.ts';
import type { CertificateAuthority } from './ca/ca.ts';
import type { PushServer } from './push/push.ts';

/** The caller's mesh identity: only from a certificate that chains to our trust bundle. */
function identityOf(socket: TLSSocket): string | undefined {
  return socket.authorized ? peerIdentity(socket.getPeerCertificate()) : undefined;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const a = Buffer.from(header.slice(7));
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface ProxyServerOptions {
  ca: CertificateAuthority;
  push: PushServer;
  token: string;
  serving: { certChainPem: string; keyPem: string };
  workloadCertTtlMs?: number;
  log: Logger;
}

export function createProxyServer(o: ProxyServerOptions): http2.Http2SecureServer {
  const server = http2.createSecureServer({
    key: o.serving.keyPem,
    cert: o.serving.certChainPem,
    ca: o.ca.trustBundlePem(),
    requestCert: true,
    // Checked per request: the certificate endpoint also serves proxies that have none yet.
    rejectUnauthorized: false,
    allowHTTP1: true,
  });
  server.on('stream', (stream, headers) => {
    const path = headers[':path'];
    const socket = stream.session?.socket as TLSSocket;
    const identity = identityOf(socket);
    if (path === PUSH_PATH && headers[':method'] === 'POST') {
      if (!identity) {
        stream.respond({ ':status': 401 });
        return void stream.end('a mesh certificate is required\n');
      }
      return o.push.accept(stream, identity);
    }
    if (path === CERTIFICATE_PATH && headers[':method'] === 'POST') {
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => {
        body += c;
      });
      stream.on('end', () => {
        void issue(o, body, identity, headers.authorization as string | undefined).then(([status, text]) => {
          stream.respond({ ':status': status, 'content-type': 'application/json' });
          stream.end(text);
        });
      });
      return;
    }
    stream.respond({ ':status': 404 });
    stream.end();
  });
  // HTTP/1 clients (curl) get a clear answer instead of a hang.
  server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
    if (req.httpVersionMajor === 2) return;
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('the control plane speaks HTTP/2 to proxies\n');
  });
  return server;
}

async function issue(
  o: ProxyServerOptions,
  body: string,
  identity: string | undefined,
  auth: string | undefined,
): Promise<[number, string]> {
  let req: CertificateRequest;
  try {
    req = JSON.parse(body) as CertificateRequest;
  } catch {
    return refusal('TRL_INVALID_ARGUMENT', 'body must be JSON {csr, namespace, serviceAccount}');
  }
  if (identity) {
    // Renewal: a proxy may only renew the identity it already holds.
    const held = parseSpiffeId(identity);
    if (!held || held.namespace !== req.namespace || held.serviceAccount !== req.serviceAccount) {
      return refusal('TRL_PERMISSION_DENIED', `${identity} may not request another identity`);
    }
  } else if (!tokenMatches(auth, o.token)) {
    return refusal('TRL_UNAUTHENTICATED', 'a valid bootstrap token or mesh certificate is required');
  }
  try {
    const signed = await o.ca.signCsr(
      req.csr,
      { namespace: req.namespace, serviceAccount: req.serviceAccount },
      { ttlMs: o.workloadCertTtlMs },
    );
    return [200, JSON.stringify({ certChain: signed.certChainPem, trustBundle: o.ca.trustBundlePem() })];
  } catch (err) {
    o.log.warn('certificate request refused', { error: errorMessage(err) });
    // A bad CSR is the proxy's to fix (400); an unusable CA is the operator's (500).
    return refusal(err instanceof TrellisError ? err.code : 'TRL_INTERNAL', errorMessage(err));
  }
}

function refusal(code: ErrorCode, message: string): [number, string] {
  return [statusOf(code), JSON.stringify({ code, message })];
}
