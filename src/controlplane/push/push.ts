// Push: one stream per proxy. Changes (store or registry) are debounced, the mesh is indexed once,
// each connected proxy's snapshot is compiled (the part proxies share, once per view) and sent only if
// its version changed. A proxy has at most one snapshot in flight: while it has not answered, newer
// snapshots replace one another and the latest goes out with its ACK or NACK, so a slow proxy never
// queues stale configs. Once a proxy has ACKed a snapshot on this stream, the next goes out as a delta
// against it. ACK/NACK and the time from a commit to the moment every proxy runs it are recorded for
// proxy-status.
import { X509Certificate } from 'node:crypto';
import type { ServerHttp2Stream } from 'node:http2';
import { assembleSnapshot, compileParts, type SnapshotParts } from '../../compile/compile.ts';
import { buildMeshIndex, type MeshConfig } from '../../compile/mesh-index.ts';
import type { ProxyNode, ProxySnapshot } from '../../compile/snapshot.ts';
import type { Logger } from '../../lib/log.ts';
import { peerIdentity } from '../../lib/spiffe.ts';
import { encodeDeltaMessage, encodeSnapshotMessage } from '../../push/encode.ts';
import {
  type ClusterCounters,
  DELTA_BASE_MISMATCH,
  type Ejection,
  LineBuffer,
  type ProxyMessage,
  type TrustBundle,
} from '../../push/protocol.ts';
import type { CredentialStore } from '../credentials.ts';
import type { JwksResolver } from '../jwks.ts';
import { type InstanceRecord, mismatches } from '../registry/instances.ts';
import type { Registry } from '../registry/registry.ts';
import type { Store } from '../store/store.ts';

export interface ProxyStatus {
  id: string;
  role: string;
  workload: string;
  namespace: string;
  identity: string;
  healthy: boolean;
  connectedAt: string;
  /** Version and revision of the latest snapshot compiled for this proxy. */
  latest?: { version: string; revision: number };
  /** Version and revision the proxy ACKed last. */
  acked?: { version: string; revision: number; at: string; pushMs: number };
  nack?: { version: string; reason: string; at: string };
  status: 'SYNCED' | 'STALE' | 'NACKED' | 'NOT SENT';
  /** Endpoints its outlier detection has ejected, as it last reported. */
  ejections?: Ejection[];
  /** Its clusters' counters, as it last reported. */
  clusters?: Record<string, ClusterCounters>;
}

/** The certificate a proxy reported it presents, as the control plane checked it. */
export interface ReportedCertificate {
  serial: string;
  notAfter: string;
  /** Fingerprint of the trusted root it chains to; undefined when it chains to none. */
  root?: string;
}

/** Where trust comes from: the CA. */
export interface TrustSource {
  trust(): TrustBundle;
  /** The trusted root a leaf-first PEM chain leads to. */
  rootOf(chainPem: string): X509Certificate | undefined;
}

export interface ProxyTrust {
  id: string;
  identity: string;
  /** The trust bundle version the proxy ACKed last. */
  trustAcked?: string;
  certificate?: ReportedCertificate;
}

/** A snapshot in flight this long without an answer no longer holds newer ones back. */
const IN_FLIGHT_TIMEOUT_MS = 30_000;

interface Connection {
  node: ProxyNode;
  identity: string;
  stream: ServerHttp2Stream;
  connectedAt: Date;
  /** The latest snapshot compiled for this proxy (sent or waiting for the one in flight). */
  latest?: SnapshotParts;
  /** The snapshot sent last; it is in flight until the proxy ACKs or NACKs it. */
  sent?: SnapshotParts;
  /** Whether it went as a delta. */
  sentDelta: boolean;
  inFlight: boolean;
  /** The snapshot the proxy ACKed last on this stream: what it runs, and the base of deltas. */
  running?: SnapshotParts;
  /** The proxy could not rebuild a delta: send whole snapshots until it ACKs one. */
  fullOnly: boolean;
  sentAt?: number;
  /** Store revision up to which this proxy's config is current (sent and acked, or unchanged). */
  currentRevision: number;
  acked?: { version: string; revision: number; at: Date; pushMs: number };
  nack?: { version: string; reason: string; at: Date };
  trustAcked?: string;
  certificate?: ReportedCertificate;
  /** What its outlier detection ejected, as it last reported. */
  ejections: Ejection[];
  clusters: Record<string, ClusterCounters>;
}

export interface Convergence {
  revision: number;
  ms: number;
  proxies: number;
}

export class PushServer {
  private readonly conns = new Map<string, Connection>();
  private readonly store: Store;
  private readonly registry: Registry;
  private readonly jwks: JwksResolver | undefined;
  private readonly credentials: CredentialStore | undefined;
  private readonly trust: TrustSource | undefined;
  private readonly trustListeners: (() => void)[] = [];
  private readonly mesh: MeshConfig;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private readonly registryQuietMs: number;
  private readonly registryMaxDelayMs: number;
  private timer?: NodeJS.Timeout;
  /** When the armed timer fires. */
  private timerAt = Number.POSITIVE_INFINITY;
  /** A configuration change is waiting: push by then. */
  private configDue?: number;
  /** Registry changes are waiting since then; each new one pushes the push back, up to a limit. */
  private registrySince?: number;
  private registryDue?: number;
  private convergenceCheck?: NodeJS.Immediate;
  /** Commit revision → when it was committed, until every proxy runs it. */
  private readonly pending = new Map<number, number>();
  lastConvergence?: Convergence;

  /**
   * Debouncing, as istiod does it (PILOT_DEBOUNCE_AFTER / _MAX), with a short window for what users
   * apply: a configuration change is pushed `debounceMs` after it (changes within that window go
   * together). Registry changes (proxies connecting, leaving, turning healthy) come in bursts — a
   * rollout, a control-plane restart — and each one changes every proxy's endpoints: they are pushed
   * once they have been quiet for `registryQuietMs`, or `registryMaxDelayMs` after the first of them.
   */
  constructor(o: {
    store: Store;
    registry: Registry;
    mesh: MeshConfig;
    log: Logger;
    debounceMs?: number;
    registryQuietMs?: number;
    registryMaxDelayMs?: number;
    /** Fetches the remote key sets RequestAuthentications name; a change of keys is pushed like a config change. */
    jwks?: JwksResolver;
    /** The state directory's credential store; a change is pushed like a config change. */
    credentials?: CredentialStore;
    /** The trust bundle sent to every proxy (and its ACKs and certificate reports). */
    trust?: TrustSource;
  }) {
    this.store = o.store;
    this.trust = o.trust;
    this.registry = o.registry;
    this.jwks = o.jwks;
    this.credentials = o.credentials;
    this.credentials?.onChange(() => {
      this.configDue ??= performance.now() + this.debounceMs;
      this.arm();
    });
    this.mesh = o.mesh;
    this.log = o.log;
    this.debounceMs = o.debounceMs ?? 10;
    this.registryQuietMs = o.registryQuietMs ?? 100;
    this.registryMaxDelayMs = o.registryMaxDelayMs ?? 1000;
    this.jwks?.sync(this.store.list());
    this.jwks?.onChange(() => {
      this.configDue ??= performance.now() + this.debounceMs;
      this.arm();
    });
    this.store.watch((e) => {
      this.jwks?.sync(this.store.list());
      this.pending.set(e.revision, performance.now());
      // A proxy that keeps NACKing never converges; do not remember its backlog forever.
      if (this.pending.size > 1024) this.pending.delete(this.pending.keys().next().value!);
      this.configDue ??= performance.now() + this.debounceMs;
      this.arm();
    });
    this.registry.onChange(() => {
      const now = performance.now();
      this.registrySince ??= now;
      this.registryDue = Math.min(now + this.registryQuietMs, this.registrySince + this.registryMaxDelayMs);
      this.arm();
    });
  }

  /** (Re)arms the timer for the earliest due push. */
  private arm(): void {
    const due = Math.min(
      this.configDue ?? Number.POSITIVE_INFINITY,
      this.registryDue ?? Number.POSITIVE_INFINITY,
    );
    if (this.timer && due === this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = due;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.configDue = this.registrySince = this.registryDue = undefined;
        this.pushAll();
      },
      Math.max(0, due - performance.now()),
    );
  }

  private pushAll(): void {
    if (this.conns.size === 0) {
      this.checkConvergence();
      return;
    }
    this.push([...this.conns.values()]);
    this.checkConvergence();
  }

  private push(conns: Connection[]): void {
    const started = performance.now();
    const index = buildMeshIndex({
      revision: this.store.revision,
      resources: this.store.list(),
      proxies: this.registry.list(),
      mesh: this.mesh,
      jwks: this.jwks?.states,
      credentials: this.credentials?.states,
    });
    let sent = 0;
    for (const conn of conns) {
      conn.latest = compileParts(index, conn.node);
      if (this.sendLatest(conn)) sent++;
    }
    this.log.debug('pushed', {
      revision: index.revision,
      proxies: conns.length,
      sent,
      ms: Math.round((performance.now() - started) * 100) / 100,
    });
  }

  /** Sends the latest snapshot unless the proxy has it or is still answering the previous one. */
  private sendLatest(conn: Connection): boolean {
    const snap = conn.latest;
    if (!snap) return false;
    if (conn.sent?.version === snap.version) {
      // Nothing changed for this proxy: it is current at the new revision once it runs this version.
      if (conn.acked?.version === snap.version) conn.currentRevision = snap.revision;
      return false;
    }
    if (conn.inFlight && performance.now() - (conn.sentAt ?? 0) < IN_FLIGHT_TIMEOUT_MS) return false;
    // Always against what the proxy ACKed, never against what may still be in flight.
    const delta = conn.running && !conn.fullOnly ? encodeDeltaMessage(conn.running, snap) : undefined;
    conn.sent = snap;
    conn.sentDelta = delta !== undefined;
    conn.inFlight = true;
    conn.sentAt = performance.now();
    // The shared part (or its delta) is one byte array for every proxy of a view: written by
    // reference, not copied.
    conn.stream.cork();
    for (const chunk of delta ?? encodeSnapshotMessage(snap)) conn.stream.write(chunk);
    conn.stream.uncork();
    return true;
  }

  /**
   * A proxy opened its stream. The caller has checked its mTLS identity and found the platform's
   * record of the instance its bootstrap token was given to (bound to that identity).
   */
  accept(stream: ServerHttp2Stream, identity: string, record: InstanceRecord): void {
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' });
    let conn: Connection | undefined;
    const lines = new LineBuffer();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      for (const line of lines.push(chunk)) conn = this.onMessage(stream, identity, record, conn, line);
    });
    const closed = () => {
      if (!conn) return;
      if (this.conns.get(conn.node.id) === conn) this.conns.delete(conn.node.id);
      this.registry.remove(conn.node.id, conn);
      this.log.info('proxy disconnected', { proxy: conn.node.id });
      conn = undefined;
      this.trustChanged();
    };
    stream.on('close', closed);
    stream.on('error', closed);
  }

  private onMessage(
    stream: ServerHttp2Stream,
    identity: string,
    record: InstanceRecord,
    conn: Connection | undefined,
    line: string,
  ): Connection | undefined {
    let msg: ProxyMessage;
    try {
      msg = JSON.parse(line) as ProxyMessage;
    } catch {
      stream.close();
      return conn;
    }
    if (msg.type === 'hello') {
      // What the instance is comes from the platform; a proxy claiming anything else is refused.
      const differ = mismatches(record, msg.node);
      if (differ.length > 0) {
        this.log.warn('proxy hello does not match the platform record; refused', {
          code: 'TRL_WORKLOAD_MISMATCH',
          proxy: record.id,
          claimed: msg.node.id,
          identity,
          fields: differ,
        });
        stream.close();
        return undefined;
      }
      const node: ProxyNode = { ...record, healthy: msg.node.healthy === true };
      const c: Connection = {
        node,
        identity,
        stream,
        connectedAt: new Date(),
        currentRevision: 0,
        sentDelta: false,
        inFlight: false,
        fullOnly: false,
        ejections: [],
        clusters: {},
      };
      this.conns.get(node.id)?.stream.close();
      this.conns.set(node.id, c);
      this.registry.upsert(node, c);
      this.log.info('proxy connected', { proxy: node.id, identity });
      this.sendTrust(c);
      this.trustChanged();
      return c;
    }
    if (!conn) return conn;
    if (msg.type === 'ack' || msg.type === 'nack') {
      const sent = conn.sent;
      const answered = sent?.version === msg.version;
      const pushMs = conn.sentAt ? performance.now() - conn.sentAt : 0;
      if (answered) conn.inFlight = false;
      if (msg.type === 'ack') {
        // Compiled again since it was sent, unchanged: the proxy is current at that newer revision.
        const revision = !answered
          ? 0
          : conn.latest?.version === msg.version
            ? conn.latest.revision
            : sent.revision;
        conn.acked = { version: msg.version, revision, at: new Date(), pushMs };
        if (answered) {
          conn.currentRevision = revision;
          conn.running = sent;
          conn.fullOnly = false;
        }
      } else if (answered && conn.sentDelta && msg.reason.startsWith(DELTA_BASE_MISMATCH)) {
        // Not a verdict on the config: the proxy runs something else. Send it whole, then deltas again.
        this.log.debug('proxy could not rebuild a delta; sending the whole snapshot', {
          proxy: conn.node.id,
          reason: msg.reason,
        });
        conn.fullOnly = true;
        conn.sent = undefined;
      } else {
        conn.nack = { version: msg.version, reason: msg.reason, at: new Date() };
        this.log.warn('proxy rejected snapshot', {
          proxy: conn.node.id,
          version: msg.version,
          reason: msg.reason,
        });
      }
      if (answered) this.sendLatest(conn);
      this.convergenceSoon();
    } else if (msg.type === 'health') {
      conn.node = { ...conn.node, healthy: msg.healthy };
      this.registry.setHealth(conn.node.id, msg.healthy);
    } else if (msg.type === 'upstream') {
      conn.ejections = Array.isArray(msg.ejections) ? msg.ejections : [];
      conn.clusters = msg.clusters !== null && typeof msg.clusters === 'object' ? msg.clusters : {};
    } else if (msg.type === 'trust-ack') {
      conn.trustAcked = msg.version;
      this.trustChanged();
    } else if (msg.type === 'certificate') {
      conn.certificate = this.checkCertificate(conn, msg.certChain);
      this.trustChanged();
    }
    return conn;
  }

  /**
   * What a proxy says it presents is taken only as far as it checks out: a certificate of its own
   * identity, chaining to a trusted root. A report that does not is recorded as chaining to none.
   */
  private checkCertificate(conn: Connection, certChain: unknown): ReportedCertificate | undefined {
    if (typeof certChain !== 'string' || !this.trust) return undefined;
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(certChain);
    } catch {
      return undefined;
    }
    const out: ReportedCertificate = { serial: leaf.serialNumber, notAfter: leaf.validToDate.toISOString() };
    const sanOk = peerIdentity(leaf) === conn.identity;
    if (!sanOk) {
      this.log.warn('proxy reported a certificate of another identity', {
        proxy: conn.node.id,
        identity: conn.identity,
        san: leaf.subjectAltName,
      });
      return out;
    }
    out.root = this.trust.rootOf(certChain)?.fingerprint256;
    return out;
  }

  private sendTrust(conn: Connection): void {
    if (!this.trust || conn.stream.closed) return;
    conn.stream.write(`${JSON.stringify({ type: 'trust', trust: this.trust.trust() })}\n`);
  }

  /** The trust bundle or signing root changed: every connected proxy gets the new one now. */
  pushTrust(): void {
    for (const c of this.conns.values()) this.sendTrust(c);
  }

  /** Called when a proxy connects, leaves, ACKs a trust bundle or reports a certificate. */
  onTrustProgress(listener: () => void): void {
    this.trustListeners.push(listener);
  }

  private trustChanged(): void {
    for (const l of this.trustListeners) l();
  }

  /** Per connected proxy: the trust bundle it ACKed and the certificate it presents. */
  trustStatus(): ProxyTrust[] {
    return [...this.conns.values()].map((c) => ({
      id: c.node.id,
      identity: c.identity,
      trustAcked: c.trustAcked,
      certificate: c.certificate,
    }));
  }

  /** Checks convergence once per turn of the event loop, not once per ACK (each check visits every proxy). */
  private convergenceSoon(): void {
    this.convergenceCheck ??= setImmediate(() => {
      this.convergenceCheck = undefined;
      this.checkConvergence();
    });
  }

  private checkConvergence(): void {
    if (this.pending.size === 0) return;
    let min = Number.POSITIVE_INFINITY;
    for (const c of this.conns.values()) min = Math.min(min, c.currentRevision);
    const now = performance.now();
    for (const [rev, at] of this.pending) {
      if (rev > min) continue;
      this.pending.delete(rev);
      const conv = { revision: rev, ms: Math.round((now - at) * 100) / 100, proxies: this.conns.size };
      this.lastConvergence = conv;
      this.log.info('config converged', { revision: rev, ms: conv.ms, proxies: conv.proxies });
    }
  }

  /** What a connected proxy runs (its last ACKed snapshot), or undefined. */
  snapshotOf(id: string): ProxySnapshot | undefined {
    const running = this.conns.get(id)?.running;
    return running && assembleSnapshot(running);
  }

  connected(id: string): boolean {
    return this.conns.has(id);
  }

  status(): ProxyStatus[] {
    return [...this.conns.values()]
      .map((c): ProxyStatus => {
        const latest = c.latest ? { version: c.latest.version, revision: c.latest.revision } : undefined;
        const nacked = c.nack && c.nack.version === c.latest?.version;
        return {
          id: c.node.id,
          role: c.node.role,
          workload: c.node.workload,
          namespace: c.node.namespace,
          identity: c.identity,
          healthy: c.node.healthy,
          connectedAt: c.connectedAt.toISOString(),
          latest,
          acked: c.acked
            ? { ...c.acked, at: c.acked.at.toISOString(), pushMs: Math.round(c.acked.pushMs * 100) / 100 }
            : undefined,
          nack: c.nack ? { ...c.nack, at: c.nack.at.toISOString() } : undefined,
          ...(c.ejections.length ? { ejections: c.ejections } : {}),
          ...(Object.keys(c.clusters).length ? { clusters: c.clusters } : {}),
          status: !latest
            ? 'NOT SENT'
            : nacked
              ? 'NACKED'
              : c.acked?.version === latest.version
                ? 'SYNCED'
                : 'STALE',
        };
      })
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  close(): void {
    this.jwks?.close();
    clearTimeout(this.timer);
    if (this.convergenceCheck) clearImmediate(this.convergenceCheck);
    for (const c of this.conns.values()) c.stream.close();
  }
}
