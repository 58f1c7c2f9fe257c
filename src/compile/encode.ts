// The wire encoding of a snapshot message for the push stream (protocol.ts), built so that what proxies
// share is encoded once: compile keeps a snapshot's shared part apart (SnapshotParts), and its bytes
// are the same array on every stream that sends it.
import { type SharedConfig, type SnapshotParts, sharedConfigJson } from './compile.ts';

const utf8 = new TextEncoder();
/** A shared part's bytes, encoded once and sent by reference on every stream that needs them. */
const sharedBytes = new WeakMap<SharedConfig, Uint8Array>();

/**
 * A snapshot message, `{"type":"snapshot","snapshot":{...}}\n`, as byte chunks to write in order: the
 * proxy's own part around the shared part (route tables and shared clusters), whose bytes are the same
 * array for every proxy that shares it. Parsed, it equals `{type: 'snapshot', snapshot: assembleSnapshot(p)}`.
 */
export function encodeSnapshotMessage(p: SnapshotParts): Uint8Array[] {
  let shared = sharedBytes.get(p.shared);
  if (!shared) {
    const { routeTables, clusters } = sharedConfigJson(p.shared);
    // The clusters array stays open: this proxy's own clusters follow in the suffix.
    shared = utf8.encode(`"routeTables":${routeTables},"clusters":${clusters.slice(0, -1)}`);
    sharedBytes.set(p.shared, shared);
  }
  const head =
    `{"type":"snapshot","snapshot":{"schema":${p.schema},"version":${JSON.stringify(p.version)},` +
    `"revision":${p.revision},"proxy":${JSON.stringify(p.proxy)},"trustDomain":${JSON.stringify(p.trustDomain)},` +
    `"listeners":${JSON.stringify(p.listeners)},`;
  const own = p.clusters.length ? JSON.stringify(p.clusters).slice(1, -1) : '';
  const sep = own && p.shared.clusters.length ? ',' : '';
  return [utf8.encode(head), shared, utf8.encode(`${sep}${own}]}}\n`)];
}
