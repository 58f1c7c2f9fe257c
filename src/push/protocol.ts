// The push protocol between proxy and control plane: newline-delimited JSON on one long-lived HTTP/2
// stream over mutual TLS (`POST /v1/stream`). The proxy speaks first (hello), the control plane sends
// snapshots, the proxy answers each with an ACK or a NACK carrying the reason. Once the proxy has ACKed
// a snapshot, the next one may come as a delta against it (what did not change is referenced, not
// resent); the proxy rebuilds the snapshot and answers it as if it had come whole.
//
// Trust travels beside the snapshots, not in them: a `trust` message carries the mesh's trust bundle and
// the root the CA signs with, sent at hello and whenever either changes (a root rotation). The proxy
// installs the bundle before it answers `trust-ack`, renews its certificate at once when it is not from
// the signing root, and reports every certificate it holds (`certificate`), so the control plane knows
// when every proxy trusts a new root and when every workload runs a certificate from it. Secrets are
// not config: they do not belong in what `trellis proxy-config` prints, and the compile step that makes
// snapshots stays free of key material.
import type { Cluster, ProxyNode, ProxySnapshot, VirtualHost } from '../compile/snapshot.ts';

export const PUSH_PATH = '/v1/stream';
export const CERTIFICATE_PATH = '/v1/certificates';

export type ProxyMessage =
  | { type: 'hello'; node: ProxyNode /** version the proxy runs from before a reconnect */; running?: string }
  | { type: 'ack'; version: string }
  | { type: 'nack'; version: string; reason: string }
  | { type: 'health'; healthy: boolean }
  /**
   * What the proxy has learnt about its upstreams: the endpoints outlier detection has ejected now,
   * and each cluster's counters. Sent when an ejection changes, and every few seconds while counters
   * move.
   */
  | { type: 'upstream'; ejections: Ejection[]; clusters: Record<string, ClusterCounters> }
  | { type: 'trust-ack'; version: string }
  /** The certificate chain the proxy now presents (leaf first), after hello and after every renewal. */
  | { type: 'certificate'; certChain: string };

/** An endpoint of one cluster that outlier detection took out of balancing, until `until`. */
export interface Ejection {
  cluster: string;
  address: string;
  port: number;
  reason: string;
  /** ISO time. */
  until: string;
}

/** Envoy-like per-cluster counters of one proxy (`cluster.<name>.upstream_rq_retry`, ...). */
export type ClusterCounters = Record<string, number>;

export type ControlPlaneMessage =
  | { type: 'snapshot'; snapshot: ProxySnapshot }
  | { type: 'delta'; delta: SnapshotDelta }
  | { type: 'trust'; trust: TrustBundle };

export interface TrustBundle {
  /** Changes whenever the bundle or the signing root does. */
  version: string;
  /** Every root the proxy must trust, PEM-concatenated: its peers' and the control plane's. */
  bundle: string;
  /** SHA-256 fingerprint (as node:crypto prints it) of the root the CA signs with now. */
  signingRoot: string;
}

/**
 * A list of the new snapshot in order: runs of the base's list (`[from, count]`: its items
 * `from … from + count - 1`) and the items the base does not have.
 */
export type DeltaList<T> = ([from: number, count: number] | T)[];

/**
 * A snapshot given as changes to `base`, the version the proxy runs. Everything but the route tables'
 * virtual hosts and the clusters comes whole. A route table's runs index the base's table of the same
 * name; a table the base lacks comes with all its virtual hosts, one not listed is gone.
 */
export interface SnapshotDelta extends Omit<ProxySnapshot, 'routeTables' | 'clusters'> {
  base: string;
  routeTables: { name: string; virtualHosts: DeltaList<VirtualHost> }[];
  clusters: DeltaList<Cluster>;
}

/** How a NACK's reason starts when the proxy cannot rebuild a delta: the control plane resends in full. */
export const DELTA_BASE_MISMATCH = 'delta base mismatch';

/** The snapshot a delta describes, rebuilt from the one the proxy runs; throws DELTA_BASE_MISMATCH. */
export function applyDelta(running: ProxySnapshot | undefined, delta: SnapshotDelta): ProxySnapshot {
  if (running?.version !== delta.base) {
    throw new Error(
      `${DELTA_BASE_MISMATCH}: the proxy runs ${running?.version ?? 'nothing'}, not ${delta.base}`,
    );
  }
  const { base: _, routeTables, clusters, ...own } = delta;
  const tables = new Map(running.routeTables.map((t) => [t.name, t.virtualHosts]));
  return {
    ...own,
    routeTables: routeTables.map((t) => ({
      name: t.name,
      virtualHosts: rebuild(tables.get(t.name) ?? [], t.virtualHosts, `route table ${t.name}`),
    })),
    clusters: rebuild(running.clusters, clusters, 'clusters'),
  };
}

function rebuild<T>(base: T[], list: DeltaList<T>, what: string): T[] {
  const out: T[] = [];
  for (const item of list) {
    if (!Array.isArray(item)) {
      out.push(item);
      continue;
    }
    const [from, count] = item;
    const valid = Number.isInteger(from) && Number.isInteger(count) && from >= 0 && count > 0;
    if (!valid || from + count > base.length) {
      throw new Error(`${DELTA_BASE_MISMATCH}: ${what}: the base has no items ${from}…${from + count - 1}`);
    }
    for (let i = from; i < from + count; i++) out.push(base[i]);
  }
  return out;
}

export interface CertificateRequest {
  csr: string;
  namespace: string;
  serviceAccount: string;
}

export interface CertificateResponse {
  certChain: string;
  trustBundle: string;
}

/** Splits a stream of text chunks into the protocol's lines; both ends read the stream with it. */
export class LineBuffer {
  /** Chunks of the line not finished yet: a long line is joined once, not re-scanned per chunk. */
  private rest: string[] = [];

  /** The complete, non-empty lines the chunk finishes. */
  push(chunk: string): string[] {
    let nl = chunk.indexOf('\n');
    if (nl === -1) {
      if (chunk !== '') this.rest.push(chunk);
      return [];
    }
    const lines: string[] = [];
    this.rest.push(chunk.slice(0, nl));
    const first = this.rest.join('');
    if (first !== '') lines.push(first);
    let start = nl + 1;
    for (nl = chunk.indexOf('\n', start); nl !== -1; nl = chunk.indexOf('\n', start)) {
      if (nl > start) lines.push(chunk.slice(start, nl));
      start = nl + 1;
    }
    this.rest = start < chunk.length ? [chunk.slice(start)] : [];
    return lines;
  }
}
