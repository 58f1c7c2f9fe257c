// TLS termination for an HTTPS gateway listener. Each connection's ClientHello is read first and its
// SNI picks one of the listener's servers (Envoy's filter chain match on server_names: exact name,
// then the longest wildcard suffix, then a server for any name); that server's TLS settings finish the
// handshake, and its route table serves the requests. Reading SNI before any handshake is what lets a
// PASSTHROUGH server hand the untouched connection to an L4 path instead.
//
// Certificates are read when a snapshot is applied, never per connection. A server whose material
// changed (a rotated credential, a re-read file) gets a new secure context in place: the listener
// stays bound, connections already up keep the context they shook hands with.
import { createHash, createPublicKey, type X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { GatewayTlsServer } from '../compile/snapshot.ts';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { MAX_CLIENT_HELLO_BYTES, parseClientHello } from './client-hello.ts';
import type { ListenerCounters } from './listener-limits.ts';
import { matchSubjectAltNames } from './upstream/external-pool.ts';

const ROUTE_TABLE = Symbol('trellis.gateway.routeTable');

type Routed = Socket & { [ROUTE_TABLE]?: string };

/** The route table of the server a gateway connection's SNI chose. */
export function routeTableOf(socket: Socket): string | undefined {
  return (socket as Routed)[ROUTE_TABLE];
}

/** One server's terminating TLS server, and why it cannot terminate, when it cannot. */
interface Terminator {
  spec: GatewayTlsServer;
  server: tls.Server;
  /** Mode and material it was built from: an equal one needs no new secure context. */
  fingerprint: string;
  problem?: string;
}

export interface GatewayTlsOptions {
  name: string;
  handshakeTimeoutMs: number;
  helloTimeoutMs: number;
  log: Logger;
}

export class GatewayTls {
  private readonly o: GatewayTlsOptions;
  private byName = new Map<string, Terminator>();
  private exact = new Map<string, Terminator>();
  /** `*.suffix` servers, longest suffix first. */
  private wildcards: [suffix: string, t: Terminator][] = [];
  private any: Terminator | undefined;
  private serve: (s: TLSSocket) => void = (s) => s.destroy();
  private counters: ListenerCounters | undefined;

  constructor(o: GatewayTlsOptions) {
    this.o = o;
  }

  /** The listener's side: where decrypted connections go, and what counts its timeouts. */
  bind(serve: (s: TLSSocket) => void, counters: ListenerCounters): void {
    this.serve = serve;
    this.counters = counters;
  }

  /** The servers of the listener's latest snapshot; never throws — a server it cannot build refuses its clients. */
  update(servers: readonly GatewayTlsServer[]): void {
    const next = new Map<string, Terminator>();
    for (const spec of servers) {
      const material = loadMaterial(spec);
      const fingerprint = `${spec.mode}|${typeof material === 'string' ? material : material.fingerprint}`;
      let t = this.byName.get(spec.name);
      if (!t || t.spec.mode !== spec.mode) t = this.terminator(spec);
      t.spec = spec;
      if (typeof material === 'string') {
        if (t.problem !== material)
          this.o.log.error('gateway server refused', {
            listener: this.o.name,
            server: spec.name,
            reason: material,
          });
        t.problem = material;
      } else if (t.fingerprint !== fingerprint || t.problem) {
        try {
          t.server.setSecureContext(material.options);
          t.problem = undefined;
          if (t.fingerprint)
            this.o.log.info('gateway server certificate updated', {
              listener: this.o.name,
              server: spec.name,
            });
        } catch (err) {
          t.problem = `its certificates do not make a TLS server: ${errorMessage(err)}`;
          this.o.log.error('gateway server refused', {
            listener: this.o.name,
            server: spec.name,
            reason: t.problem,
          });
        }
      }
      t.fingerprint = fingerprint;
      next.set(spec.name, t);
    }
    this.byName = next;
    this.exact = new Map();
    this.wildcards = [];
    this.any = undefined;
    for (const t of next.values()) {
      // Validation keeps SNI names unique per port; across Gateways the oldest server keeps a name.
      if (t.spec.serverNames.length === 0) this.any ??= t;
      for (const n of t.spec.serverNames) {
        if (n.startsWith('*.')) {
          if (!this.wildcards.some(([s]) => s === n.slice(1))) this.wildcards.push([n.slice(1), t]);
        } else if (!this.exact.has(n)) this.exact.set(n, t);
      }
    }
    this.wildcards.sort((a, b) => b[0].length - a[0].length);
  }

  /** Envoy's server_names match: exact, then the longest `*.suffix`, then a server for any name. */
  select(sni: string | undefined): Terminator | undefined {
    if (sni === undefined) return this.any;
    const exact = this.exact.get(sni);
    if (exact) return exact;
    for (const [suffix, t] of this.wildcards)
      if (sni.length > suffix.length && sni.endsWith(suffix)) return t;
    return this.any;
  }

  /** A TLS connection on the listener: its ClientHello is read (bounded in size and time), then it is handed on. */
  accept(socket: Socket): void {
    let seen: Buffer | undefined;
    const timer = setTimeout(() => {
      if (socket.destroyed) return;
      this.counters?.preCxTimeout.inc();
      socket.destroy();
    }, this.o.helloTimeoutMs).unref();
    const onData = (chunk: Buffer) => {
      seen = seen ? Buffer.concat([seen, chunk]) : chunk;
      const hello = parseClientHello(seen);
      if (hello.state === 'partial' && seen.length <= MAX_CLIENT_HELLO_BYTES + 5) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      const t = hello.state === 'complete' ? this.select(hello.sni) : undefined;
      if (!t || t.problem) {
        // No server for this name (or none usable): Envoy closes such a connection without a handshake.
        socket.destroy();
        return;
      }
      socket.unshift(seen);
      t.server.emit('connection', socket);
    };
    socket.on('data', onData);
    socket.resume();
  }

  private terminator(spec: GatewayTlsServer): Terminator {
    const server = tls.createServer({
      // MUTUAL: no certificate, no handshake. OPTIONAL_MUTUAL: a certificate is asked for, and one that
      // is presented must still verify (checked once the handshake is done).
      requestCert: spec.mode !== 'SIMPLE',
      rejectUnauthorized: spec.mode === 'MUTUAL',
      ALPNProtocols: ['h2', 'http/1.1'],
      handshakeTimeout: this.o.handshakeTimeoutMs,
    });
    const t: Terminator = { spec, server, fingerprint: '' };
    server.on('secureConnection', (socket: TLSSocket) => {
      const problem = clientProblem(t.spec, socket);
      if (problem) {
        this.o.log.debug('gateway client refused', { server: t.spec.name, reason: problem });
        socket.destroy();
        return;
      }
      (socket as Routed)[ROUTE_TABLE] = t.spec.routeTable;
      this.serve(socket);
    });
    // Node destroys a socket whose handshake fails, but only reports one that timed out.
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.counters?.preCxTimeout.inc();
      socket.destroy();
    });
    return t;
  }
}

/** The checks Envoy's validation context makes after the CA's: a presented certificate must verify. */
function clientProblem(spec: GatewayTlsServer, socket: TLSSocket): string | undefined {
  if (spec.mode === 'SIMPLE') return undefined;
  const cert = socket.getPeerX509Certificate();
  if (!cert) return spec.mode === 'MUTUAL' ? 'no client certificate' : undefined;
  if (!socket.authorized) return `client certificate not verified: ${socket.authorizationError}`;
  if (spec.subjectAltNames) {
    const err = matchSubjectAltNames(spec.subjectAltNames, socket.getPeerCertificate());
    if (err) return err.message.replace('server certificate', 'client certificate');
  }
  if (spec.certificateHashes && !spec.certificateHashes.includes(sha256(cert.raw, 'hex')))
    return 'client certificate hash is not one of verifyCertificateHash';
  if (spec.spkiHashes && !spec.spkiHashes.includes(spki(cert)))
    return 'client certificate public key is not one of verifyCertificateSpki';
  return undefined;
}

function sha256(b: Buffer, enc: 'hex' | 'base64'): string {
  return createHash('sha256').update(b).digest(enc);
}

function spki(cert: X509Certificate): string {
  return sha256(createPublicKey(cert.publicKey).export({ type: 'spki', format: 'der' }), 'base64');
}

/** A server's secure context options, read from its files and credentials; a string says what is missing. */
function loadMaterial(
  spec: GatewayTlsServer,
): { options: tls.SecureContextOptions; fingerprint: string } | string {
  const read = (what: string, file: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read ${what} ${file}: ${errorMessage(err)}`);
    }
  };
  try {
    const certs: string[] = [];
    const keys: string[] = [];
    for (const c of spec.credentials ?? []) {
      if (c.certificateChain === undefined || c.privateKey === undefined)
        return `credential ${c.name} has no tls.crt and tls.key in the control plane's credential store`;
      certs.push(c.certificateChain);
      keys.push(c.privateKey);
    }
    if (spec.serverCertificate && spec.privateKey) {
      certs.push(read('serverCertificate', spec.serverCertificate));
      keys.push(read('privateKey', spec.privateKey));
    }
    for (const p of spec.tlsCertificates ?? []) {
      certs.push(read('serverCertificate', p.serverCertificate));
      keys.push(read('privateKey', p.privateKey));
    }
    if (certs.length === 0) return 'no server certificate';
    let ca: string | undefined;
    if (spec.caCertificates) ca = read('caCertificates', spec.caCertificates);
    else if (spec.caCredential) {
      ca = spec.caCredential.caCertificates;
      if (ca === undefined) return `credential ${spec.caCredential.name} has no ca.crt for ${spec.mode}`;
    }
    if (spec.mode === 'MUTUAL' && ca === undefined) return 'MUTUAL without a client CA';
    const crl = spec.caCrl ? read('caCrl', spec.caCrl) : undefined;
    const options: tls.SecureContextOptions = {
      cert: certs,
      key: keys,
      ...(ca !== undefined && { ca }),
      ...(crl !== undefined && { crl }),
      minVersion: spec.minVersion as tls.SecureVersion,
      maxVersion: spec.maxVersion as tls.SecureVersion,
      ...(spec.ciphers && { ciphers: spec.ciphers }),
    };
    const fingerprint = sha256(Buffer.from(JSON.stringify([options, spec.subjectAltNames])), 'hex');
    return { options, fingerprint };
  } catch (err) {
    return errorMessage(err);
  }
}
