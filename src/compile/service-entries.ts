// ServiceEntry hosts as upstreams: which host:ports a sidecar routes to (HTTP ports of STATIC or DNS
// entries, as Istio adds them to the mesh's registry), and the cluster of each, with the endpoints
// the entry lists and the host's DestinationRule applied as for mesh clusters. Outside the mesh there
// is no sidecar to do mutual TLS with, so the cluster is plaintext unless the DestinationRule says
// otherwise — for MESH_INTERNAL entries too: Trellis cannot tell whether their endpoints run a proxy,
// so mesh mTLS to them is asked for with `tls.mode: ISTIO_MUTUAL`.
import type { ClientTLSSettings } from '../api/kinds/index.ts';
import type { ServiceEntrySpec } from '../api/kinds/service-entry.ts';
import type { Resource } from '../api/resource.ts';
import { outboundClusterName, outboundSni } from './hosts.ts';
import { labelsMatch, type MeshIndex } from './mesh-index.ts';
import type { Cluster, Endpoint, UpstreamTls } from './snapshot.ts';
import {
  connectionPool,
  credentialIn,
  loadBalancerPolicy,
  localityLb,
  outlierDetection,
  resolvePolicy,
  upstreamTls,
} from './traffic-policy.ts';

/** A ServiceEntry host:port a sidecar routes to. */
export interface EntryPort {
  host: string;
  port: number;
  entry: Resource<ServiceEntrySpec>;
}

const ROUTED_RESOLUTIONS = new Set(['STATIC', 'DNS', 'DNS_ROUND_ROBIN']);

/**
 * The outbound listener is an HTTP proxy whose upstream side speaks HTTP/1.1, so only HTTP ports
 * are routed; TCP, TLS, HTTPS and HTTP/2 ports wait for transparent capture and protocol detection.
 */
export function routedPort(protocol: string | undefined): boolean {
  return protocol?.toUpperCase() === 'HTTP';
}

const memo = new WeakMap<MeshIndex, Map<string, EntryPort>>();

/**
 * `host:port` → the entry that defines it, in host order. A registry Service of the same name wins,
 * and of several entries for one host:port the oldest, as Istio keeps the first.
 */
export function routedEntries(index: MeshIndex): Map<string, EntryPort> {
  let out = memo.get(index);
  if (out) return out;
  const found: EntryPort[] = [];
  for (const entry of index.serviceEntries) {
    const s = entry.spec;
    if (!ROUTED_RESOLUTIONS.has(s.resolution ?? 'NONE') || s.workloadSelector) continue;
    for (const raw of s.hosts) {
      const host = raw.toLowerCase();
      if (host.includes('*') || index.services.has(host)) continue;
      for (const p of s.ports ?? []) {
        if (routedPort(p.protocol) && entryEndpoints(entry, host, p.number).length > 0)
          found.push({ host, port: p.number, entry });
      }
    }
  }
  out = new Map();
  for (const e of found.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port))) {
    const key = `${e.host}:${e.port}`;
    if (!out.has(key)) out.set(key, e);
  }
  memo.set(index, out);
  return out;
}

/** The ports a routed ServiceEntry host has, for a VirtualService destination that names none. */
export function entryPorts(index: MeshIndex, host: string): number[] {
  return [...routedEntries(index).values()].filter((e) => e.host === host).map((e) => e.port);
}

function entryEndpoints(se: Resource<ServiceEntrySpec>, host: string, port: number): Endpoint[] {
  const sePort = se.spec.ports?.find((p) => p.number === port);
  if (!sePort) return [];
  const endpoints: Endpoint[] = (se.spec.endpoints ?? [])
    .filter((e) => e.address && !e.address.startsWith('unix://'))
    .map((e) => ({
      address: e.address!,
      port: e.ports?.[sePort.name] ?? sePort.targetPort ?? port,
      ...(e.labels ? { labels: e.labels } : {}),
      healthy: true,
    }));
  // DNS without endpoints: the host itself, resolved when connecting.
  if (endpoints.length === 0 && se.spec.resolution === 'DNS')
    endpoints.push({ address: host, port: sePort.targetPort ?? port, healthy: true });
  return endpoints;
}

/** The cluster of a routed host:port, if a ServiceEntry defines it. */
export function routedEntryCluster(
  index: MeshIndex,
  host: string,
  port: number,
  subset: string | undefined,
): Cluster | undefined {
  const e = routedEntries(index).get(`${host}:${port}`);
  if (!e) return undefined;
  const r = serviceEntryCluster(index, e.entry, host, port, subset);
  return 'cluster' in r ? r.cluster : undefined;
}

/** The cluster `outbound|<port>|<subset>|<host>` of a ServiceEntry host, or why it cannot have one. */
export function serviceEntryCluster(
  index: MeshIndex,
  se: Resource<ServiceEntrySpec>,
  host: string,
  port: number,
  subset: string | undefined,
): { cluster: Cluster } | { error: string } {
  const ref = `ServiceEntry ${se.metadata.namespace}/${se.metadata.name}`;
  if (!se.spec.ports?.some((p) => p.number === port))
    return { error: `${ref} has no port ${port} for ${host}` };
  const resolution = se.spec.resolution ?? 'NONE';
  if (!ROUTED_RESOLUTIONS.has(resolution))
    return { error: `${ref} has resolution ${resolution}: Trellis needs STATIC or DNS endpoints` };
  const all = entryEndpoints(se, host, port);
  if (all.length === 0) return { error: `${ref} lists no endpoint addresses` };
  const dr = index.destinationRules.get(host);
  const subsetSpec = subset ? dr?.spec.subsets?.find((s) => s.name === subset) : undefined;
  const subsetLabels = subsetSpec?.labels;
  // As for mesh services, a subset the DestinationRule does not define selects nothing.
  const endpoints = subset
    ? subsetLabels
      ? all.filter((e) => labelsMatch(subsetLabels, e.labels ?? {}))
      : []
    : all;
  const policy = resolvePolicy(dr?.spec.trafficPolicy, subsetSpec?.trafficPolicy, port);
  const locality = localityLb(policy.loadBalancer, policy.outlierDetection);
  const pool = connectionPool(policy.connectionPool, policy.retryBudget);
  const outlier = outlierDetection(policy.outlierDetection);
  return {
    cluster: {
      name: outboundClusterName(port, subset, host),
      direction: 'outbound',
      service: host,
      port,
      ...(subset ? { subset } : {}),
      origin: dr ? `${ref}, DestinationRule ${dr.metadata.namespace}/${dr.metadata.name}` : ref,
      lb: loadBalancerPolicy(policy.loadBalancer),
      ...(locality ? { locality } : {}),
      tls: entryTls(policy.tls, index, se, host, port, subset, dr?.metadata.namespace),
      ...(pool ? { connectionPool: pool } : {}),
      ...(outlier ? { outlierDetection: outlier } : {}),
      endpoints,
    },
  };
}

/** Without `sni` the host is sent, and (without subjectAltNames) the certificate checked against it. */
function entryTls(
  tls: ClientTLSSettings | undefined,
  index: MeshIndex,
  se: Resource<ServiceEntrySpec>,
  host: string,
  port: number,
  subset: string | undefined,
  drNamespace: string | undefined,
): UpstreamTls {
  if (tls?.mode === 'ISTIO_MUTUAL') {
    const td = index.mesh.trustDomain;
    const accounts = (se.spec.endpoints ?? []).flatMap((e) =>
      e.serviceAccount ? [`spiffe://${td}/ns/${se.metadata.namespace}/sa/${e.serviceAccount}`] : [],
    );
    const identities = [...new Set([...(se.spec.subjectAltNames ?? []), ...accounts])].sort();
    return { mode: 'ISTIO_MUTUAL', sni: outboundSni(port, subset, host), identities };
  }
  const out = upstreamTls(tls, { mode: 'DISABLE' }, credentialIn(index, drNamespace));
  return out.mode === 'SIMPLE' || out.mode === 'MUTUAL' ? { ...out, sni: out.sni ?? host } : out;
}
