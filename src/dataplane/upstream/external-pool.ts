// Connections to upstreams outside the mesh: a ServiceEntry's endpoints, or any cluster whose
// DestinationRule sets tls DISABLE, SIMPLE or MUTUAL. Plaintext or TLS as the cluster says; always
// HTTP/1.1, whatever the downstream spoke, since a server outside the mesh cannot be assumed to speak
// HTTP/2 (h2c or ALPN h2 would need the port's protocol, which the snapshot does not carry yet).
// The certificate files are read when a snapshot is applied, as Istio's sidecar reads its mounted
// files: a file that cannot be read or parsed fails that cluster (503 UF naming the file), not the
// snapshot, so one bad path does not hold back the rest of the mesh's configuration.
// Pools outlive snapshots, per endpoint and TLS settings, and are replaced when the files' contents
// or the connection settings change; those no snapshot uses are closed.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls, { type PeerCertificate } from 'node:tls';
import type { Cluster, ConnectionPool, Endpoint, UpstreamTls } from '../../compile/snapshot.ts';
import { errorMessage } from '../../lib/errors.ts';
import type { Transports } from './balance.ts';
import { tuneUpstreamSocket } from './connect.ts';
import { type Dispatch, failed, UpstreamFailure } from './dispatch.ts';
import { H1Pool } from './h1-pool.ts';
import { h1Transport } from './h1-transport.ts';
import { replayStale } from './replay.ts';

export type ExternalTls = Exclude<UpstreamTls, { mode: 'ISTIO_MUTUAL' }>;

/** What a cluster's TLS settings come to once its files are read: shared by its endpoints' pools. */
interface Client {
  /** Undefined for plaintext. */
  tls?: tls.ConnectionOptions;
  /** Names the upstream in failure messages, with what it was checked against. */
  describe: (ep: Endpoint) => string;
  /** Equal fingerprints: the same connections will do. */
  fingerprint: string;
}

interface Held {
  pool: H1Pool;
  fingerprint: string;
}

const FILES = ['caCertificates', 'caCrl', 'clientCertificate', 'privateKey'] as const;

/** Original destinations a cluster keeps connections and TLS clients for. */
const MAX_DESTINATIONS = 256;

/** `host[:port]` (IPv6 in brackets) → the host to connect to and the port, `fallback` if none. */
export function splitAuthority(authority: string, fallback: number): { host: string; port: number } {
  const colon = authority.lastIndexOf(':');
  const hasPort = colon > 0 && !authority.endsWith(']');
  const host = hasPort ? authority.slice(0, colon) : authority;
  const port = hasPort ? Number(authority.slice(colon + 1)) : fallback;
  return {
    host: host.startsWith('[') ? host.slice(1, -1) : host,
    port: Number.isInteger(port) && port > 0 ? port : fallback,
  };
}

export class ExternalPool {
  private readonly pools = new Map<string, Held>();
  /** Original destination pools, least recently used first. */
  private readonly destinations = new Map<string, { pool: H1Pool; dispatch: Dispatch }>();

  /** The transports of each of the cluster's endpoints, or why it has none. */
  transports(cluster: Cluster & { tls: ExternalTls }): Transports[] | string {
    const client = clientOf(cluster);
    if (typeof client === 'string') return `cluster ${cluster.name}: ${client}`;
    return cluster.endpoints.map((ep) => {
      const pool = this.pool(ep, cluster.tls, client, cluster.connectionPool);
      const d = replayStale(h1Transport(() => pool, client.describe(ep)));
      return { 'HTTP/1.1': d, 'HTTP/2': d };
    });
  }

  private pool(ep: Endpoint, t: ExternalTls, client: Client, settings: ConnectionPool | undefined): H1Pool {
    const key = ExternalPool.key(ep, t);
    const fingerprint = `${client.fingerprint}|${JSON.stringify(settings ?? {})}`;
    const held = this.pools.get(key);
    if (held?.fingerprint === fingerprint) return held.pool;
    held?.pool.close();
    const pool = this.connector(ep, client, settings);
    this.pools.set(key, { pool, fingerprint });
    return pool;
  }

  private connector(ep: Endpoint, client: Client, settings: ConnectionPool | undefined): H1Pool {
    const opts = client.tls;
    const connect = opts
      ? () => {
          const socket = tls.connect({ ...opts, host: ep.address, port: ep.port });
          tuneUpstreamSocket(socket, settings, 'secureConnect');
          return socket;
        }
      : () => {
          const socket = net.connect({ host: ep.address, port: ep.port });
          tuneUpstreamSocket(socket, settings, 'connect');
          return socket;
        };
    return new H1Pool(connect, 64, {
      maxRequestsPerConnection: settings?.maxRequestsPerConnection,
      idleTimeoutMs: settings?.idleTimeoutMs,
      maxConnectionDurationMs: settings?.maxConnectionDurationMs,
    });
  }

  /**
   * Original destination (a PASSTHROUGH cluster without endpoints): each request goes to the host
   * and port its authority names, the cluster's port when it names none; TLS, when the cluster
   * originates it, names that host. Pools are kept per destination, the least recent dropped past
   * a bound, since the destinations are the apps' to choose.
   */
  originalDestination(cluster: Cluster & { tls: ExternalTls }): Dispatch {
    const clients = new Map<string, Client | string>();
    return (req, handler) => {
      const { host, port } = splitAuthority(req.authority, cluster.port);
      let client = clients.get(host);
      if (client === undefined) {
        if (clients.size >= MAX_DESTINATIONS) clients.delete(clients.keys().next().value!);
        client = clientOf({ ...cluster, service: host });
        clients.set(host, client);
      }
      if (typeof client === 'string')
        return failed(handler, new UpstreamFailure('unsupported', `cluster ${cluster.name}: ${client}`));
      const ep: Endpoint = { address: host, port, healthy: true };
      const key = ExternalPool.key(ep, cluster.tls);
      let d = this.destinations.get(key);
      if (d) this.destinations.delete(key);
      else {
        if (this.destinations.size >= MAX_DESTINATIONS) {
          const [oldest, held] = this.destinations.entries().next().value!;
          this.destinations.delete(oldest);
          held.pool.close();
        }
        const pool = this.connector(ep, client, cluster.connectionPool);
        d = { pool, dispatch: replayStale(h1Transport(() => pool, client.describe(ep))) };
      }
      this.destinations.set(key, d);
      return d.dispatch(req, handler);
    };
  }

  /** Closes the pools whose keys (`ExternalPool.key`) are not in `keep`. */
  retain(keep: Set<string>): void {
    for (const [key, held] of this.pools) {
      if (!keep.has(key)) {
        this.pools.delete(key);
        held.pool.close();
      }
    }
  }

  static key(ep: Endpoint, t: ExternalTls): string {
    return `${ep.address}:${ep.port}/${JSON.stringify(t)}`;
  }

  close(): void {
    this.retain(new Set());
    for (const d of this.destinations.values()) d.pool.close();
    this.destinations.clear();
  }
}

/** Reads and parses the cluster's files; a string says which one failed and why. */
function clientOf(cluster: Cluster & { tls: ExternalTls }): Client | string {
  const t = cluster.tls;
  if (t.mode === 'DISABLE') return { describe: (ep) => `${ep.address}:${ep.port}`, fingerprint: 'plaintext' };
  const pem: Partial<Record<(typeof FILES)[number], string>> = {};
  const hash = createHash('sha256');
  for (const f of FILES) {
    const file = t[f];
    if (file === undefined) continue;
    try {
      pem[f] = readFileSync(file, 'utf8');
    } catch (err) {
      return `cannot read ${f} ${file}: ${errorMessage(err)}`;
    }
    hash.update(`${f}\0${pem[f]}\0`);
  }
  // credentialName: the control plane sent the PEM texts; they take the place of the files.
  const cred = t.credential;
  if (cred) {
    if (cred.caCertificates !== undefined) pem.caCertificates = cred.caCertificates;
    if (cred.certificateChain !== undefined) pem.clientCertificate = cred.certificateChain;
    if (cred.privateKey !== undefined) pem.privateKey = cred.privateKey;
    if (t.mode === 'MUTUAL' && (pem.clientCertificate === undefined || pem.privateKey === undefined))
      return `credential ${cred.name} has no tls.crt and tls.key in the control plane's credential store`;
    hash.update(`credential\0${JSON.stringify(cred)}`);
  }
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext({
      ...(pem.caCertificates !== undefined ? { ca: pem.caCertificates } : {}),
      // Node then checks the server's chain against it (OpenSSL's CRL_CHECK and CRL_CHECK_ALL).
      ...(pem.caCrl !== undefined ? { crl: pem.caCrl } : {}),
      ...(pem.clientCertificate !== undefined ? { cert: pem.clientCertificate, key: pem.privateKey } : {}),
    });
  } catch (err) {
    const files = FILES.flatMap((f) => (t[f] ? [`${f} ${t[f]}`] : [])).join(', ');
    return `the certificate files (${files}) do not make a TLS client: ${errorMessage(err)}`;
  }
  const sni = t.sni ?? cluster.service ?? '';
  const sans = t.subjectAltNames;
  const trust = t.insecureSkipVerify
    ? 'server certificate not verified (insecureSkipVerify)'
    : `${t.caCertificates ? `CA ${t.caCertificates}` : cred?.caCertificates ? `CA of credential ${cred.name}` : 'system CAs'}, ${sans ? `SAN ${sans.join('|')}` : `SAN ${sni}`}`;
  return {
    tls: {
      secureContext,
      // RFC 6066 allows host names only, and Node warns on an address.
      ...(sni && !net.isIP(sni) ? { servername: sni } : {}),
      ALPNProtocols: ['http/1.1'],
      rejectUnauthorized: !t.insecureSkipVerify,
      checkServerIdentity: (host: string, cert: PeerCertificate) =>
        sans ? matchSubjectAltNames(sans, cert) : tls.checkServerIdentity(sni || host, cert),
    },
    describe: (ep) => `${ep.address}:${ep.port} (TLS ${t.mode}, SNI ${sni || '-'}, ${trust})`,
    fingerprint: `${JSON.stringify(t)}|${hash.digest('hex')}`,
  };
}

/**
 * Envoy's match_subject_alt_names with exact matchers, as Istio configures them: one of the
 * certificate's DNS, URI or IP SANs must be one of `wanted`; a wildcard DNS SAN covers one label.
 */
export function matchSubjectAltNames(wanted: readonly string[], cert: PeerCertificate): Error | undefined {
  const sans = (cert.subjectaltname ?? '')
    .split(', ')
    .filter(Boolean)
    .map((s) => {
      const colon = s.indexOf(':');
      return { type: s.slice(0, colon), value: s.slice(colon + 1) };
    });
  for (const w of wanted) {
    for (const s of sans) {
      if (s.value === w) return undefined;
      if (s.type === 'DNS' && s.value.startsWith('*.')) {
        const dot = w.indexOf('.');
        if (dot > 0 && w.slice(dot) === s.value.slice(1)) return undefined;
      }
    }
  }
  return new Error(
    `server certificate SANs (${cert.subjectaltname || 'none'}) match none of subjectAltNames ${wanted.join(', ')}`,
  );
}
