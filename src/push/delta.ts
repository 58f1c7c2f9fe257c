// Deltas between shared parts: what a proxy of a view needs to move from one shared part to the next,
// as runs of the base's pieces and the pieces it lacks (see SnapshotDelta in protocol.ts).

import type { Cluster, VirtualHost } from '../compile/snapshot.ts';
import type { SerializedPiece, SharedConfig } from '../compile/views.ts';
import { serializedCluster, serializedVirtualHost } from '../compile/views.ts';
import type { DeltaList, SnapshotDelta } from './protocol.ts';

/** A shared part as changes to another one (see SnapshotDelta); its clusters come before the proxy's own. */
export interface SharedDelta {
  routeTables: SnapshotDelta['routeTables'];
  clusters: DeltaList<Cluster>;
}

/** (new shared part → (base → delta)): every proxy of a view moves between the same two parts. */
const sharedDeltas = new WeakMap<SharedConfig, WeakMap<SharedConfig, SharedDelta | null>>();

/**
 * The shared part `next` as changes to `base`, or undefined when it reuses nothing of it (a full
 * snapshot is then as small). Pieces are matched by the hashes of their JSON, cached when the versions
 * were computed. Worked out once per pair of shared parts, however many proxies make that move.
 */
export function sharedDelta(base: SharedConfig, next: SharedConfig): SharedDelta | undefined {
  let byBase = sharedDeltas.get(next);
  if (!byBase) {
    byBase = new WeakMap();
    sharedDeltas.set(next, byBase);
  }
  let delta = byBase.get(base);
  if (delta === undefined) {
    delta = diffShared(base, next);
    byBase.set(base, delta);
  }
  return delta ?? undefined;
}

function diffShared(base: SharedConfig, next: SharedConfig): SharedDelta | null {
  let reused = false;
  const diff = <T extends object>(serialized: (piece: T) => SerializedPiece, from: T[], to: T[]) => {
    // The same hash means the same content, as for versions.
    const at = new Map<string, number>();
    for (const [i, p] of from.entries()) at.set(serialized(p).hash, i);
    const list: DeltaList<T> = [];
    let run: [number, number] | undefined;
    for (const piece of to) {
      const j = at.get(serialized(piece).hash);
      if (j === undefined) {
        list.push(piece);
        run = undefined;
      } else if (run && run[0] + run[1] === j) {
        run[1]++;
      } else {
        run = [j, 1];
        list.push(run);
        reused = true;
      }
    }
    return list;
  };
  const tables = new Map(base.routeTables.map((t) => [t.name, t.virtualHosts]));
  const routeTables = next.routeTables.map((t) => ({
    name: t.name,
    virtualHosts: diff<VirtualHost>(serializedVirtualHost, tables.get(t.name) ?? [], t.virtualHosts),
  }));
  const clusters = diff<Cluster>(serializedCluster, base.clusters, next.clusters);
  return reused ? { routeTables, clusters } : null;
}

/** A shared delta's JSON as `sharedConfigJson` gives a shared part's; the pieces' JSON is reused. */
export function sharedDeltaJson(delta: SharedDelta): { routeTables: string; clusters: string } {
  const list = <T extends object>(serialized: (piece: T) => SerializedPiece, items: DeltaList<T>) =>
    `[${items.map((item) => (Array.isArray(item) ? `[${item}]` : serialized(item).json)).join(',')}]`;
  const tables = delta.routeTables.map(
    (t) => `{"name":${JSON.stringify(t.name)},"virtualHosts":${list(serializedVirtualHost, t.virtualHosts)}}`,
  );
  return { routeTables: `[${tables.join(',')}]`, clusters: list(serializedCluster, delta.clusters) };
}
