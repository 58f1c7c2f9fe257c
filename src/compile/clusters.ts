// Outbound clusters: one per (service, port, subset), built from the registry's instances — or, for
// a ServiceEntry host, the entry's endpoints (service-entries.ts) — and the DestinationRule the
// proxy's namespace looks up for the host (export-to.ts). A cluster depends on who looks at it only
// through that rule and whether the host is exported to them, so each variant is built once per index.
import type { DestinationRuleSpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { destinationRuleFor, entryVisible, serviceVisible } from './export-to.ts';
import { outboundClusterName, outboundSni } from './hosts.ts';
import { endpointIdentity, endpointOf, labelsMatch, type MeshIndex } from './mesh-index.ts';
import { entryPortsOf, routedEntryCluster } from './service-entries.ts';
import type { Cluster, Endpoint, ProxyNode } from './snapshot.ts';
import {
  connectionPool,
  credentialIn,
  loadBalancerPolicy,
  localityLb,
  outlierDetection,
  resolvePolicy,
  upstreamTls,
  warmup,
} from './traffic-policy.ts';

/** Cluster name → its variants, by the DestinationRule that shaped it (`null`: none, `hidden`: not exported). */
type Built = Map<string, Map<Resource<DestinationRuleSpec> | null | 'hidden', Cluster>>;

const built = new WeakMap<MeshIndex, Built>();

function builtFor(index: MeshIndex): Built {
  let clusters = built.get(index);
  if (!clusters) {
    clusters = new Map();
    built.set(index, clusters);
  }
  return clusters;
}

/** How many outbound clusters were built for an index. */
export function clusterCount(index: MeshIndex): number {
  let n = 0;
  for (const variants of builtFor(index).values()) n += variants.size;
  return n;
}

/** What a route names: a host port and subset, which a ClusterSet turns into its proxy's cluster. */
export interface ClusterRef {
  fqdn: string;
  port: number;
  subset: string | undefined;
}

/** The namespace a host's service lives in, where its DestinationRules are looked up second. */
function serviceNamespaceOf(index: MeshIndex, fqdn: string, port: number): string | undefined {
  return (
    index.services.get(fqdn)?.namespace ??
    entryPortsOf(index).get(`${fqdn}:${port}`)?.entry.metadata.namespace
  );
}

/** Is the host in the registry of proxies in `namespace`? A host nobody defines is nobody's to hide. */
function hostVisible(index: MeshIndex, fqdn: string, port: number, namespace: string): boolean {
  const svc = index.services.get(fqdn);
  if (svc) return serviceVisible(index, svc, namespace);
  const entry = entryPortsOf(index).get(`${fqdn}:${port}`);
  return entry ? entryVisible(index, entry.entry, namespace) : true;
}

/**
 * Collects the clusters routes refer to, so a proxy gets exactly the clusters it can use, as proxies
 * in `namespace` see them.
 */
export class ClusterSet {
  readonly clusters = new Map<string, Cluster>();
  readonly refs = new Map<string, ClusterRef>();
  readonly namespace: string;
  private readonly index: MeshIndex;
  private readonly built: Built;
  constructor(index: MeshIndex, namespace: string) {
    this.index = index;
    this.namespace = namespace;
    this.built = builtFor(index);
  }

  outbound(fqdn: string, port: number, subset: string | undefined): string {
    const name = outboundClusterName(port, subset, fqdn);
    if (this.clusters.has(name)) return name;
    const index = this.index;
    const visible = hostVisible(index, fqdn, port, this.namespace);
    const dr = visible
      ? destinationRuleFor(index, fqdn, serviceNamespaceOf(index, fqdn, port), this.namespace)
      : undefined;
    const variant = visible ? (dr ?? null) : 'hidden';
    let variants = this.built.get(name);
    if (!variants) {
      variants = new Map();
      this.built.set(name, variants);
    }
    let cluster = variants.get(variant);
    if (!cluster) {
      cluster = !visible
        ? hiddenCluster(index, name, fqdn, port, subset, this.namespace)
        : ((index.services.has(fqdn) ? undefined : routedEntryCluster(index, fqdn, port, subset, dr)) ??
          outboundCluster(index, name, fqdn, port, subset, dr));
      variants.set(variant, cluster);
    }
    this.clusters.set(name, cluster);
    this.refs.set(name, { fqdn, port, subset });
    return name;
  }

  /** Adds the cluster a route compiled by another ClusterSet of the same index names. */
  add(ref: ClusterRef): void {
    this.outbound(ref.fqdn, ref.port, ref.subset);
  }

  /** Sorted by name. */
  list(): Cluster[] {
    return [...this.clusters.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }
}

/** A gateway is reached at the listener of the server port the service port targets, not an inbound port. */
function gatewayAware(ep: Endpoint, node: ProxyNode, workloadPort: number): Endpoint {
  if (node.role !== 'gateway') return ep;
  return { ...ep, port: node.gatewayPorts?.[String(workloadPort)] ?? workloadPort };
}

/**
 * A route's cluster for a host that is not exported to the proxy's namespace: no endpoints, so a
 * request gets 503 naming why, as Istio's missing cluster does (less mysteriously).
 */
function hiddenCluster(
  index: MeshIndex,
  name: string,
  fqdn: string,
  port: number,
  subset: string | undefined,
  namespace: string,
): Cluster {
  const svc = index.services.get(fqdn);
  const entry = entryPortsOf(index).get(`${fqdn}:${port}`)?.entry;
  const owner = svc
    ? `Service ${svc.namespace}/${svc.name}`
    : `ServiceEntry ${entry?.metadata.namespace}/${entry?.metadata.name}`;
  return {
    name,
    direction: 'outbound',
    service: fqdn,
    port,
    ...(subset ? { subset } : {}),
    origin: `${owner} is not exported to namespace ${namespace}`,
    lb: loadBalancerPolicy(undefined),
    tls: { mode: 'DISABLE' },
    endpoints: [],
  };
}

function outboundCluster(
  index: MeshIndex,
  name: string,
  fqdn: string,
  port: number,
  subset: string | undefined,
  dr: Resource<DestinationRuleSpec> | undefined,
): Cluster {
  const svc = index.services.get(fqdn);
  const subsetSpec = subset ? dr?.spec.subsets?.find((s) => s.name === subset) : undefined;
  const subsetLabels = subsetSpec?.labels;
  const instances = svc?.instances.filter((i) => i.targetPorts.has(port)) ?? [];
  // A subset the DestinationRule does not define selects nothing: requests get 503 (no healthy upstream);
  // one without labels selects every endpoint, as in Istio (the egress gateway's `subsets: [{name: cnn}]`).
  const selected = !subset
    ? instances
    : !subsetSpec
      ? []
      : subsetLabels
        ? instances.filter((i) => labelsMatch(subsetLabels, i.node.labels))
        : instances;
  const identities = [
    ...new Set(instances.map((i) => endpointIdentity(index.mesh.trustDomain, i.node))),
  ].sort();
  const policy = resolvePolicy(dr?.spec.trafficPolicy, subsetSpec?.trafficPolicy, port);
  const mesh = index.meshConfig;
  const locality = localityLb(policy.loadBalancer, policy.outlierDetection, mesh.localityLbSetting);
  const pool = connectionPool(policy.connectionPool, policy.retryBudget, mesh);
  const outlier = outlierDetection(policy.outlierDetection);
  const slowStart = warmup(policy.loadBalancer);
  return {
    name,
    direction: 'outbound',
    service: fqdn,
    port,
    subset,
    origin: dr ? `DestinationRule ${dr.metadata.namespace}/${dr.metadata.name}` : undefined,
    lb: loadBalancerPolicy(policy.loadBalancer),
    ...(slowStart ? { warmup: slowStart } : {}),
    ...(locality ? { locality } : {}),
    tls: upstreamTls(
      policy.tls,
      { mode: 'ISTIO_MUTUAL', sni: outboundSni(port, subset, fqdn), identities },
      credentialIn(index, dr?.metadata.namespace),
    ),
    ...(pool ? { connectionPool: pool } : {}),
    ...(outlier ? { outlierDetection: outlier } : {}),
    endpoints: selected.map((i) => gatewayAware(endpointOf(index, i.node), i.node, i.targetPorts.get(port)!)),
  };
}
