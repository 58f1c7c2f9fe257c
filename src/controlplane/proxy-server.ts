// The proxies' door to the control plane (cf. istiod's 15012): mutual TLS, HTTP/2. Each proxy holds a
// bootstrap token the platform was given for its workload instance alone (cf. a pod's service account
// token). With it, a proxy without a certificate may ask for one, for the identity the token is bound
// to and no other; the push stream needs both a mesh certificate and the token, whose platform record
// (not the proxy's hello) says what the instance is.

import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { type ErrorCode, statusOf } from '../lib/codes.ts';
import { errorMessage, TrellisError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { parseSpiffeId, peerIdentity } from '../lib/spiffe.ts';
import { CERTIFICATE_PATH, type CertificateRequest, PUSH_PATH } from '../push/protocol.ts';
import type { CertificateAuthority } from './ca/ca.ts';
import type { PushServer } from './push/push.ts';
import type { InstanceRecord, PlatformInstances } from './registry/instances.ts';

/** The caller's mesh identity: only from a certificate that chains to our trust bundle. */
function identityOf(socket: TLSSocket): string | undefined {
  return socket.authorized ? peerIdentity(socket.getPeerCertificate()) : undefined;
}

function bearer(header: string | undefined): string | undefined {
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
}

const MAX_CSR_REQUEST_BYTES = 64 * 1024;

export interface ProxyServerOptions {
  ca: CertificateAuthority;
  push: PushServer;
  instances: PlatformInstances;
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
    const token = bearer(headers.authorization as string | undefined);
    const record = token === undefined ? undefined : o.instances.byToken(token);
    if (path === PUSH_PATH && headers[':method'] === 'POST') {
      const refused = streamRefusal(o, identity, record);
      if (refused) {
        o.log.warn('push stream refused', { proxy: record?.id, identity, code: refused[0] });
        stream.respond({ ':status': statusOf(refused[0]), 'content-type': 'application/json' });
        return void stream.end(JSON.stringify({ code: refused[0], message: refused[1] }));
      }
      return o.push.accept(stream, identity!, record!);
    }
    if (path === CERTIFICATE_PATH && headers[':method'] === 'POST') {
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => {
        if (stream.headersSent) return;
        body += c;
        // A CSR is about a kilobyte; anything much larger is not one and is not held.
        if (body.length > MAX_CSR_REQUEST_BYTES) {
          const [status, text] = refusal('TRL_PAYLOAD_TOO_LARGE', 'a certificate request is at most 64 KiB');
          stream.respond({ ':status': status, 'content-type': 'application/json' });
          stream.end(text);
          body = '';
        }
      });
      stream.on('end', () => {
        if (stream.headersSent) return;
        void issue(o, body, identity, record, token !== undefined).then(([status, text]) => {
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

function identityOfRecord(o: ProxyServerOptions, r: InstanceRecord): string {
  return `spiffe://${o.ca.trustDomain}/ns/${r.namespace}/sa/${r.serviceAccount}`;
}

/** Why a push stream may not open: it needs a mesh certificate and a token bound to that identity. */
function streamRefusal(
  o: ProxyServerOptions,
  identity: string | undefined,
  record: InstanceRecord | undefined,
): [ErrorCode, string] | undefined {
  if (!identity) return ['TRL_UNAUTHENTICATED', 'a mesh certificate is required'];
  if (!record) return ['TRL_UNAUTHENTICATED', "the proxy's bootstrap token is required"];
  if (identityOfRecord(o, record) !== identity)
    return ['TRL_PERMISSION_DENIED', `the bootstrap token of ${record.id} is not bound to ${identity}`];
  return undefined;
}

async function issue(
  o: ProxyServerOptions,
  body: string,
  identity: string | undefined,
  record: InstanceRecord | undefined,
  sentToken: boolean,
): Promise<[number, string]> {
  let req: CertificateRequest;
  try {
    req = JSON.parse(body) as CertificateRequest;
  } catch {
    return refusal('TRL_INVALID_ARGUMENT', 'body must be JSON {csr, namespace, serviceAccount}');
  }
  const requested = `spiffe://${o.ca.trustDomain}/ns/${req.namespace}/sa/${req.serviceAccount}`;
  // A token, when sent, decides; else the certificate held (renewal). Either way, only that identity.
  const bound = record ? identityOfRecord(o, record) : sentToken ? undefined : identity;
  if (!bound) {
    o.log.warn('certificate request refused', { code: 'TRL_UNAUTHENTICATED', requested });
    return refusal(
      'TRL_UNAUTHENTICATED',
      sentToken
        ? 'the bootstrap token is not one the platform gave to a workload instance'
        : "a mesh certificate or the proxy's bootstrap token is required",
    );
  }
  const held = parseSpiffeId(bound);
  if (!held || held.namespace !== req.namespace || held.serviceAccount !== req.serviceAccount) {
    o.log.warn('certificate request refused', {
      code: 'TRL_PERMISSION_DENIED',
      proxy: record?.id,
      bound,
      requested,
    });
    return refusal(
      'TRL_PERMISSION_DENIED',
      `the caller is bound to ${bound} and may not request ${requested}`,
    );
  }
  try {
    const signed = await o.ca.signCsr(
      req.csr,
      { namespace: req.namespace, serviceAccount: req.serviceAccount },
      { ttlMs: o.workloadCertTtlMs },
    );
    return [200, JSON.stringify({ certChain: signed.certChainPem, trustBundle: o.ca.trustBundlePem() })];
  } catch (err) {
    o.log.warn('certificate request refused', { proxy: record?.id, bound, error: errorMessage(err) });
    // A bad CSR is the proxy's to fix (400); an unusable CA is the operator's (500).
    return refusal(err instanceof TrellisError ? err.code : 'TRL_INTERNAL', errorMessage(err));
  }
}

function refusal(code: ErrorCode, message: string): [number, string] {
  return [statusOf(code), JSON.stringify({ code, message })];
}
