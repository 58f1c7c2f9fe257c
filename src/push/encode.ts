// The wire encoding of snapshot and delta messages for the push stream (protocol.ts), built so that
// what proxies share is encoded once: compile keeps a snapshot's shared part apart (SnapshotParts),
// and its bytes (or those of its delta from another shared part) are the same array on every stream
// that sends them.
import type { SnapshotParts } from '../compile/compile.ts';
import { type SharedConfig, serializedCluster, serializedVirtualHost } from '../compile/views.ts';
import { type SharedDelta, sharedDelta, sharedDeltaJson } from './delta.ts';

/**
 * `JSON.stringify` of the shared route tables and of the shared clusters, joined from the pieces
 * serialized when the version was computed. Built when the shared part is first encoded, not kept.
 */
export function sharedConfigJson(shared: SharedConfig): { routeTables: string; clusters: string } {
  const tables = shared.routeTables.map((t) => {
    const hosts = t.virtualHosts.map((vh) => serializedVirtualHost(vh).json);
    return `{"name":${JSON.stringify(t.name)},"virtualHosts":[${hosts.join(',')}]}`;
  });
  const clusters = shared.clusters.map((c) => serializedCluster(c).json);
  return { routeTables: `[${tables.join(',')}]`, clusters: `[${clusters.join(',')}]` };
}

const utf8 = new TextEncoder();
/** A shared part's bytes, encoded once and sent by reference on every stream that needs them. */
const sharedBytes = new WeakMap<SharedConfig, Uint8Array>();
const deltaBytes = new WeakMap<SharedDelta, Uint8Array>();

/** The shared part's fields; the clusters array stays open: the proxy's own clusters follow. */
function sharedFields(json: { routeTables: string; clusters: string }): Uint8Array {
  return utf8.encode(`"routeTables":${json.routeTables},"clusters":${json.clusters.slice(0, -1)}`);
}

/** The proxy's own fields before the shared ones, and the own clusters that close the message. */
function ownFields(p: SnapshotParts, sharedClusters: number): [string, Uint8Array] {
  const head =
    `"schema":${p.schema},"version":${JSON.stringify(p.version)},"revision":${p.revision},` +
    `"proxy":${JSON.stringify(p.proxy)},"trustDomain":${JSON.stringify(p.trustDomain)},` +
    `"listeners":${JSON.stringify(p.listeners)},` +
    (p.http ? `"http":${JSON.stringify(p.http)},` : '');
  const own = p.clusters.length ? JSON.stringify(p.clusters).slice(1, -1) : '';
  const sep = own && sharedClusters ? ',' : '';
  return [head, utf8.encode(`${sep}${own}]}}\n`)];
}

/**
 * A snapshot message, `{"type":"snapshot","snapshot":{...}}\n`, as byte chunks to write in order: the
 * proxy's own part around the shared part (route tables and shared clusters), whose bytes are the same
 * array for every proxy that shares it. Parsed, it equals `{type: 'snapshot', snapshot: assembleSnapshot(p)}`.
 */
export function encodeSnapshotMessage(p: SnapshotParts): Uint8Array[] {
  let shared = sharedBytes.get(p.shared);
  if (!shared) {
    shared = sharedFields(sharedConfigJson(p.shared));
    sharedBytes.set(p.shared, shared);
  }
  const [head, tail] = ownFields(p, p.shared.clusters.length);
  return [utf8.encode(`{"type":"snapshot","snapshot":{${head}`), shared, tail];
}

/**
 * A delta message, `{"type":"delta","delta":{...}}\n`, that turns the snapshot `base` into `next`, or
 * undefined when the full snapshot is as small. The proxy's own part comes whole (it is small); the
 * shared part's delta is encoded once per pair of shared parts. Every piece a delta reuses costs a
 * run of a few bytes instead of its JSON, and the rest is what the snapshot message would carry.
 */
export function encodeDeltaMessage(base: SnapshotParts, next: SnapshotParts): Uint8Array[] | undefined {
  const delta = sharedDelta(base.shared, next.shared);
  if (!delta) return undefined;
  let shared = deltaBytes.get(delta);
  if (!shared) {
    shared = sharedFields(sharedDeltaJson(delta));
    deltaBytes.set(delta, shared);
  }
  const [head, tail] = ownFields(next, delta.clusters.length);
  return [
    utf8.encode(`{"type":"delta","delta":{"base":${JSON.stringify(base.version)},${head}`),
    shared,
    tail,
  ];
}
