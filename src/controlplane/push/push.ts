// Push: one stream per proxy. Changes (store or registry) are debounced, the mesh is indexed once,
// each connected proxy's snapshot is compiled and sent only if its version changed. ACK/NACK and the
// time from a commit to the moment every proxy runs it are recorded for proxy-status.
import type { ServerHttp2Stream } from 'node:http2';
import { compileProxy } from '../../compile/compile.ts';
import { buildMeshIndex, type MeshConfig } from '../../compile/index.ts';
import { type ControlPlaneMessage, LineBuffer, type ProxyMessage } from '../../compile/protocol.ts';
import type { ProxyNode, ProxySnapshot } from '../../compile/snapshot.ts';
import type { Logger } from '../../lib/log.ts';
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
}

interface Connection {
  node: ProxyNode;
  identity: string;
  stream: ServerHttp2Stream;
  connectedAt: Date;
  latest?: ProxySnapshot;
  /** The snapshot the proxy ACKed last: what it runs. */
  running?: ProxySnapshot;
  sentAt?: number;
  /** Store revision up to which this proxy's config is current (sent and acked, or unchanged). */
  currentRevision: number;
  acked?: { version: string; revision: number; at: Date; pushMs: number };
  nack?: { version: string; reason: string; at: Date };
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
  private readonly mesh: MeshConfig;
  private readonly log: Logger;
  private readonly debounceMs: number;
  private timer?: NodeJS.Timeout;
  /** Commit revision → when it was committed, until every proxy runs it. */
  private readonly pending = new Map<number, number>();
  lastConvergence?: Convergence;

  constructor(o: { store: Store; registry: Registry; mesh: MeshConfig; log: Logger; debounceMs?: number }) {
    this.store = o.store;
    this.registry = o.registry;
    this.mesh = o.mesh;
    this.log = o.log;
    this.debounceMs = o.debounceMs ?? 10;
    this.store.watch((e) => {
      this.pending.set(e.revision, performance.now());
      // A proxy that keeps NACKing never converges; do not remember its backlog forever.
      if (this.pending.size > 1024) this.pending.delete(this.pending.keys().next().value!);
      this.schedule();
    });
    this.registry.onChange(() => this.schedule());
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.pushAll();
    }, this.debounceMs);
  }

  private pushAll(): void {
    if (this.conns.size === 0) {
      this.checkConvergence();
      return;
    }
    const index = buildMeshIndex({
      revision: this.store.revision,
      resources: this.store.list(),
      proxies: this.registry.list(),
      mesh: this.mesh,
    });
    for (const conn of this.conns.values()) this.pushTo(conn, compileProxy(index, conn.node));
    this.checkConvergence();
  }

  private pushTo(conn: Connection, snap: ProxySnapshot): void {
    if (conn.latest?.version === snap.version) {
      // Nothing changed for this proxy: it is current at the new revision once it runs this version.
      conn.latest = snap;
      if (conn.acked?.version === snap.version) conn.currentRevision = snap.revision;
      return;
    }
    conn.latest = snap;
    conn.sentAt = performance.now();
    const msg: ControlPlaneMessage = { type: 'snapshot', snapshot: snap };
    conn.stream.write(`${JSON.stringify(msg)}\n`);
  }

  /** A proxy opened its stream (its mTLS identity already checked by the caller). */
  accept(stream: ServerHttp2Stream, identity: string): void {
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' });
    let conn: Connection | undefined;
    const lines = new LineBuffer();
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      for (const line of lines.push(chunk)) conn = this.onMessage(stream, identity, conn, line);
    });
    const closed = () => {
      if (!conn) return;
      if (this.conns.get(conn.node.id) === conn) this.conns.delete(conn.node.id);
      this.registry.remove(conn.node.id, conn);
      this.log.info('proxy disconnected', { proxy: conn.node.id });
      conn = undefined;
    };
    stream.on('close', closed);
    stream.on('error', closed);
  }

  private onMessage(
    stream: ServerHttp2Stream,
    identity: string,
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
      const node = msg.node;
      const claimed = `spiffe://${this.mesh.trustDomain}/ns/${node.namespace}/sa/${node.serviceAccount}`;
      if (claimed !== identity) {
        this.log.warn('proxy identity does not match its certificate', { proxy: node.id, claimed, identity });
        stream.close();
        return undefined;
      }
      const c: Connection = { node, identity, stream, connectedAt: new Date(), currentRevision: 0 };
      this.conns.get(node.id)?.stream.close();
      this.conns.set(node.id, c);
      this.registry.upsert(node, c);
      this.log.info('proxy connected', { proxy: node.id, identity });
      return c;
    }
    if (!conn) return conn;
    if (msg.type === 'ack' || msg.type === 'nack') {
      const sent = conn.latest;
      const pushMs = conn.sentAt ? performance.now() - conn.sentAt : 0;
      if (msg.type === 'ack') {
        conn.acked = {
          version: msg.version,
          revision: sent?.version === msg.version ? sent.revision : 0,
          at: new Date(),
          pushMs,
        };
        if (sent?.version === msg.version) {
          conn.currentRevision = sent.revision;
          conn.running = sent;
        }
      } else {
        conn.nack = { version: msg.version, reason: msg.reason, at: new Date() };
        this.log.warn('proxy rejected snapshot', {
          proxy: conn.node.id,
          version: msg.version,
          reason: msg.reason,
        });
      }
      this.checkConvergence();
    } else if (msg.type === 'health') {
      conn.node = { ...conn.node, healthy: msg.healthy };
      this.registry.setHealth(conn.node.id, msg.healthy);
    }
    return conn;
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
    return this.conns.get(id)?.running;
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
    clearTimeout(this.timer);
    for (const c of this.conns.values()) c.stream.close();
  }
}
