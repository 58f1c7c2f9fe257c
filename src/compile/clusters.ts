// Outbound clusters: one per (service, port, subset), built from the registry's instances — or, for
// a ServiceEntry host, the entry's endpoints (service-entries.ts) — and the host's DestinationRule. They do not depend on who looks at them, so each is built once per index.
import { outboundClusterName, outboundSni } from './hosts.ts';
import { endpointIdentity, endpointOf, labelsMatch, type MeshIndex } from './mesh-index.ts';
import { routedEntryCluster } from './service-entries.ts';
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

const built = new WeakMap<MeshIndex, Map<string, Cluster>>();

function builtFor(index: MeshIndex): Map<string, Cluster> {
  let clusters = built.get(index);
  if (!clusters) {
    clusters = new Map();
    built.set(index, clusters);
  }
  return clusters;
}

/** How many outbound clusters were built for an index. */
export function clusterCount(index: MeshIndex): number {
  return builtFor(index).size;
}

/** Collects the clusters routes refer to, so a proxy gets exactly the clusters it can use. */
export class ClusterSet {
  readonly clusters = new Map<string, Cluster>();
  private readonly index: MeshIndex;
  private readonly built: Map<string, Cluster>;
  constructor(index: MeshIndex) {
    this.index = index;
    this.built = builtFor(index);
  }

  outbound(fqdn: string, port: number, subset: string | undefined): string {
    const name = outboundClusterName(port, subset, fqdn);
    if (this.clusters.has(name)) return name;
    let cluster = this.built.get(name);
    if (!cluster) {
      cluster =
        (this.index.services.has(fqdn) ? undefined : routedEntryCluster(this.index, fqdn, port, subset)) ??
        outboundCluster(this.index, name, fqdn, port, subset);
      this.built.set(name, cluster);
    }
    this.clusters.set(name, cluster);
    return name;
  }

  /** Adds a cluster another ClusterSet of the same index already built. */
  add(name: string): void {
    this.clusters.set(name, this.built.get(name)!);
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

function outboundCluster(
  index: MeshIndex,
  name: string,
  fqdn: string,
  port: number,
  subset: string | undefined,
): Cluster {
  const svc = index.services.get(fqdn);
  const dr = index.destinationRules.get(fqdn);
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
