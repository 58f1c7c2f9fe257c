// What a proxy sees, and what proxies with the same view share: the route tables and outbound
// clusters, compiled, serialized and hashed once per mesh index and view key.
import { ClusterSet, clusterCount } from './clusters.ts';
import { gatewayConfig } from './gateway.ts';
import { contentHash } from './hash.ts';
import type { MeshIndex } from './mesh-index.ts';
import { sidecarOutbound, virtualHostCount } from './outbound.ts';
import { scopeOf } from './sidecar-scope.ts';
import type { Cluster, GatewayListener, ProxyNode, RouteTable, VirtualHost } from './snapshot.ts';

/**
 * The part of a snapshot that proxies with the same view share: route tables and outbound clusters.
 * It is compiled, serialized and hashed once per mesh index and view; a proxy's own part (its name,
 * listeners, inbound clusters) is small.
 */
export interface SharedConfig {
  routeTables: RouteTable[];
  /** Sorted by name. */
  clusters: Cluster[];
  /** Content hash of both, part of every version that includes them. */
  hash: string;
}

export interface View {
  shared: SharedConfig;
  /** A gateway's listeners (sidecars build theirs per proxy). */
  listeners?: GatewayListener[];
}

interface ViewMemo {
  views: Map<string, View>;
  /** Every label key some VirtualService's sourceLabels tests: a sidecar's view depends on no other. */
  sourceLabelKeys: string[];
}

const memos = new WeakMap<MeshIndex, ViewMemo>();

function memoOf(index: MeshIndex): ViewMemo {
  let memo = memos.get(index);
  if (memo) return memo;
  const sourceLabelKeys = new Set<string>();
  for (const vs of index.virtualServices) {
    const { http = [], tcp = [], tls = [] } = vs.spec;
    for (const rule of [...http, ...tcp, ...tls])
      for (const m of rule.match ?? [])
        for (const k of Object.keys(m.sourceLabels ?? {})) sourceLabelKeys.add(k);
  }
  memo = { views: new Map(), sourceLabelKeys: [...sourceLabelKeys].sort() };
  memos.set(index, memo);
  return memo;
}

/** What an index's memos hold: how many views, virtual hosts and clusters were compiled for it. */
export function compileStats(index: MeshIndex): { views: number; virtualHosts: number; clusters: number } {
  return {
    views: memoOf(index).views.size,
    virtualHosts: virtualHostCount(index),
    clusters: clusterCount(index),
  };
}

/**
 * Proxies with equal view keys get equal shared configs. A sidecar's outbound side depends on its
 * namespace (short names; what is exported to it, which DestinationRules it looks up), its Sidecar
 * (what it imports) and on the labels some sourceLabels match tests; a gateway's on its labels (the
 * Gateway selectors) and namespace (exportTo again).
 */
export function viewKey(index: MeshIndex, node: ProxyNode): string {
  if (node.role === 'gateway') {
    const labels = Object.keys(node.labels)
      .sort()
      .map((k) => [k, node.labels[k]]);
    return JSON.stringify(['gateway', node.namespace, labels]);
  }
  const labels = memoOf(index).sourceLabelKeys.map((k) => node.labels[k] ?? null);
  const sidecar = scopeOf(index, node)?.origin ?? null;
  return JSON.stringify(['sidecar', node.namespace, labels, sidecar]);
}

/** A piece of a shared part as JSON, and the hash of that JSON. */
export interface SerializedPiece {
  json: string;
  hash: string;
}

// Serialized pieces, cached by object: snapshot parts are never modified once compiled, and a virtual
// host or cluster is shared by every view (and so every proxy) of a mesh index that uses it. The
// versions need the hashes; the push encoding reuses the JSON they were computed from.
const virtualHostPieces = new WeakMap<VirtualHost, SerializedPiece>();
const clusterPieces = new WeakMap<Cluster, SerializedPiece>();

function serialized<T extends object>(cache: WeakMap<T, SerializedPiece>, value: T): SerializedPiece {
  let entry = cache.get(value);
  if (!entry) {
    const json = JSON.stringify(value);
    entry = { json, hash: contentHash(json) };
    cache.set(value, entry);
  }
  return entry;
}

export function serializedVirtualHost(vh: VirtualHost): SerializedPiece {
  return serialized(virtualHostPieces, vh);
}

export function serializedCluster(c: Cluster): SerializedPiece {
  return serialized(clusterPieces, c);
}

/** A hash of the shared part, from its pieces' hashes: a view costs little beyond what only it has. */
function sharedConfig(routeTables: RouteTable[], clusters: Cluster[]): SharedConfig {
  const hashes: string[] = [];
  for (const t of routeTables) {
    for (const vh of t.virtualHosts) hashes.push(serializedVirtualHost(vh).hash);
    hashes.push(`|${JSON.stringify(t.name)}`);
  }
  hashes.push('|');
  for (const c of clusters) hashes.push(serializedCluster(c).hash);
  return { routeTables, clusters, hash: contentHash(hashes.join('\n')) };
}

export function viewOf(index: MeshIndex, node: ProxyNode): View {
  const memo = memoOf(index);
  const key = viewKey(index, node);
  let view = memo.views.get(key);
  if (view) return view;
  // Compiled for the first proxy with this key; by construction it gives every other one the same.
  const clusters = new ClusterSet(index, node.namespace);
  if (node.role === 'gateway') {
    const gw = gatewayConfig(index, node, clusters);
    view = { shared: sharedConfig(gw.tables, clusters.list()), listeners: gw.listeners };
  } else {
    const outbound = sidecarOutbound(index, node, clusters, scopeOf(index, node));
    view = { shared: sharedConfig([outbound], clusters.list()) };
  }
  memo.views.set(key, view);
  return view;
}
