// (mesh index, proxy) → ProxySnapshot. Pure: no I/O, no clock, no randomness; the same input always
// gives the same snapshot and the same version. Each concern has its own module: clusters, routes,
// the sidecar's outbound and inbound sides, gateways, and the views proxies share; this assembles.

import { http2Ports } from './app-protocol.ts';
import { extAuthzCluster } from './ext-authz.ts';
import { contentHash } from './hash.ts';
import { inboundClusters, sidecarInbound } from './inbound.ts';
import { buildMeshIndex, type CompileInput, endpointIdentity, type MeshIndex } from './mesh-index.ts';
import { scopeOf } from './sidecar-scope.ts';
import type { Cluster, HttpOptions, Listener, ProxyNode, ProxySnapshot, RouteTable } from './snapshot.ts';
import { SNAPSHOT_SCHEMA_VERSION } from './snapshot.ts';
import { type SharedConfig, viewOf } from './views.ts';

export function compile(input: CompileInput, node: ProxyNode): ProxySnapshot {
  return compileProxy(buildMeshIndex(input), node);
}

/** A compiled snapshot kept in its two parts; `assembleSnapshot` gives the ProxySnapshot. */
export interface SnapshotParts {
  schema: number;
  version: string;
  revision: number;
  proxy: ProxySnapshot['proxy'];
  trustDomain: string;
  listeners: Listener[];
  http?: HttpOptions;
  shared: SharedConfig;
  /** This proxy's own clusters, after the shared ones (a sidecar's inbound clusters). */
  clusters: Cluster[];
}

export function compileParts(index: MeshIndex, node: ProxyNode): SnapshotParts {
  const view = viewOf(index, node);
  const pathNormalization = index.meshConfig.pathNormalization;
  const scope = scopeOf(index, node);
  const policy = scope?.outboundTrafficPolicy;
  const ingress = scope && scope.ingress.size > 0 ? scope.ingress : undefined;
  const listeners: Listener[] =
    node.role === 'gateway'
      ? view.listeners!
      : [
          {
            name: 'outbound',
            type: 'outbound',
            routeTable: 'outbound',
            ...addressesIn(index.addresses, view.shared.routeTables),
            ...(policy ? { outboundTrafficPolicy: policy } : {}),
          },
          sidecarInbound(index, node, ingress),
        ];
  const own = {
    schema: SNAPSHOT_SCHEMA_VERSION,
    proxy: {
      id: node.id,
      role: node.role,
      namespace: node.namespace,
      identity: endpointIdentity(index.mesh.trustDomain, node),
      ...localityOf(node.labels),
      // failoverPriority ranks endpoints by the labels they share with this proxy.
      ...(view.shared.clusters.some((c) => c.locality?.failoverPriority) ? { labels: node.labels } : {}),
    },
    trustDomain: index.mesh.trustDomain,
    listeners,
    // Left out at Istio's default, so a mesh without mesh config compiles as it always did.
    ...(pathNormalization !== 'BASE' ? { http: { pathNormalization } } : {}),
    clusters:
      node.role === 'gateway'
        ? []
        : [
            ...inboundClusters(node, ingress, http2Ports(index, node)),
            ...authorizerOf(index, listeners, view.shared),
          ],
  };
  // Equal versions are equal snapshots: the hash covers this proxy's part and the shared part's hash.
  const version = contentHash(`${JSON.stringify(own)}\n${view.shared.hash}`);
  return { ...own, version, revision: index.revision, shared: view.shared };
}

/** A sidecar's external authorizer's cluster, when its outbound clusters do not have it already. */
function authorizerOf(index: MeshIndex, listeners: Listener[], shared: SharedConfig): Cluster[] {
  const inbound = listeners.find((l) => l.type === 'inbound');
  const cluster = extAuthzCluster(index, inbound?.authorization?.extAuthz);
  return cluster && !shared.clusters.some((c) => c.name === cluster.name) ? [cluster] : [];
}

/** The ProxySnapshot the parts make up (shared arrays are referenced, not copied). */
export function assembleSnapshot(p: SnapshotParts): ProxySnapshot {
  return {
    schema: p.schema,
    proxy: p.proxy,
    trustDomain: p.trustDomain,
    listeners: p.listeners,
    routeTables: p.shared.routeTables,
    clusters: p.clusters.length ? p.shared.clusters.concat(p.clusters) : p.shared.clusters,
    ...(p.http ? { http: p.http } : {}),
    version: p.version,
    revision: p.revision,
  };
}

export function compileProxy(index: MeshIndex, node: ProxyNode): ProxySnapshot {
  return assembleSnapshot(compileParts(index, node));
}

const TOPOLOGY = [
  'topology.kubernetes.io/region',
  'topology.kubernetes.io/zone',
  'topology.istio.io/subzone',
];

/** The proxy's `region/zone/subzone`, when its workload has topology labels. */
function localityOf(labels: Record<string, string>): { locality?: string } {
  const parts = TOPOLOGY.map((k) => labels[k] ?? '');
  return parts.some((p) => p !== '') ? { locality: parts.join('/') } : {};
}

/**
 * The VIPs of the hosts this sidecar's route table knows: a host its Sidecar does not import is no
 * more reachable by address than by name, and a Service out of scope leaves the snapshot unchanged.
 */
function addressesIn(
  all: Record<string, string> | undefined,
  tables: RouteTable[],
): { addresses?: Record<string, string> } {
  if (!all) return {};
  const known = new Set(tables.flatMap((t) => t.virtualHosts.flatMap((v) => v.domains)));
  const addresses: Record<string, string> = {};
  for (const [ip, host] of Object.entries(all)) if (known.has(host)) addresses[ip] = host;
  return Object.keys(addresses).length ? { addresses } : {};
}
