// ServiceEntry hosts as upstreams, as Istio adds them to the mesh's registry: every port of every
// entry gets a cluster `outbound|<port>|<subset>|<host>` (TCP and TLS ports too, for the L4 path);
// HTTP ports also get a sidecar virtual host. How a cluster finds its endpoints follows `resolution`:
// STATIC the entry's addresses, DNS every address of its names (resolved at the proxy),
// DNS_ROUND_ROBIN one address at a time, NONE the host and port the app asked for (original
// destination); `workloadSelector` takes the mesh's own workloads. `location` decides the default
// TLS: MESH_INTERNAL endpoints are mesh workloads, reached with mutual TLS as mesh services are;
// MESH_EXTERNAL ones have no sidecar, so plaintext unless a DestinationRule originates TLS.
import type { ClientTLSSettings, DestinationRuleSpec } from '../api/kinds/index.ts';
import type { ServiceEntryPort, ServiceEntrySpec, WorkloadEntry } from '../api/kinds/service-entry.ts';
import { isIP } from '../api/kinds/syntax.ts';
import type { Resource } from '../api/resource.ts';
import { outboundClusterName, outboundSni } from './hosts.ts';
import { endpointIdentity, endpointOf, labelsMatch, type MeshIndex } from './mesh-index.ts';
import type { Cluster, Endpoint, InboundService, ProxyNode, UpstreamTls } from './snapshot.ts';
import {
  connectionPool,
  credentialIn,
  loadBalancerPolicy,
  localityLb,
  outlierDetection,
  resolvePolicy,
  upstreamTls,
} from './traffic-policy.ts';

/** A ServiceEntry host:port. */
export interface EntryPort {
  host: string;
  port: number;
  entry: Resource<ServiceEntrySpec>;
  servicePort: ServiceEntryPort;
}

/** Istio's default `dnsRefreshRate`: how often a proxy resolves a DNS entry's names again. */
export const DNS_REFRESH_MS = 60_000;

/**
 * The protocols the outbound HTTP listener routes by Host: HTTP, and a port without a protocol,
 * whose traffic reaching an HTTP proxy is HTTP by definition. TCP, TLS, HTTPS, HTTP/2 and gRPC ports
 * get their clusters for the L4 path and protocol-aware listeners.
 */
export function routedPort(protocol: string | undefined): boolean {
  const p = protocol?.toUpperCase();
  return p === undefined || p === 'HTTP' || p === 'HTTP_PROXY';
}

const allMemo = new WeakMap<MeshIndex, Map<string, EntryPort>>();
const routedMemo = new WeakMap<MeshIndex, Map<string, EntryPort>>();

/**
 * Every ServiceEntry `host:port` → the entry that defines it, in host order. A registry Service of
 * the same name wins, and of several entries for one host:port the oldest, as Istio keeps the first.
 */
export function entryPortsOf(index: MeshIndex): Map<string, EntryPort> {
  let out = allMemo.get(index);
  if (out) return out;
  const found: EntryPort[] = [];
  for (const entry of index.serviceEntries) {
    if (entry.spec.resolution === 'DYNAMIC_DNS') continue; // warned at apply: not routed
    for (const raw of entry.spec.hosts) {
      const host = raw.toLowerCase();
      if (index.services.has(host)) continue;
      for (const p of entry.spec.ports ?? []) found.push({ host, port: p.number, entry, servicePort: p });
    }
  }
  out = new Map();
  for (const e of found.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : a.port - b.port))) {
    const key = `${e.host}:${e.port}`;
    if (!out.has(key)) out.set(key, e);
  }
  allMemo.set(index, out);
  return out;
}

/** The HTTP host ports a sidecar's outbound route table has a virtual host for. */
export function routedEntries(index: MeshIndex): Map<string, EntryPort> {
  let out = routedMemo.get(index);
  if (out) return out;
  out = new Map([...entryPortsOf(index)].filter(([, e]) => routedPort(e.servicePort.protocol)));
  routedMemo.set(index, out);
  return out;
}

/**
 * A virtual host's domains for an entry port: the host with and without the port, and the entry's
 * single addresses, which an app may name instead (CIDRs select connections, which is the L4 path's).
 */
export function entryDomains(e: EntryPort): string[] {
  const name = `${e.host}:${e.port}`;
  const ips = (e.entry.spec.addresses ?? []).filter((a) => isIP(a));
  return [
    e.host,
    name,
    ...ips.flatMap((ip) => (ip.includes(':') ? [`[${ip}]:${e.port}`] : [ip, `${ip}:${e.port}`])),
  ];
}

/** The ports a routed ServiceEntry host has, for a VirtualService destination that names none. */
export function entryPorts(index: MeshIndex, host: string): number[] {
  return [...routedEntries(index).values()].filter((e) => e.host === host).map((e) => e.port);
}

/** Topology labels, as locality-aware balancing reads an endpoint's place. */
const TOPOLOGY = [
  'topology.kubernetes.io/region',
  'topology.kubernetes.io/zone',
  'topology.istio.io/subzone',
];
const NETWORK_LABEL = 'topology.istio.io/network';

function entryEndpointLabels(e: WorkloadEntry): Record<string, string> | undefined {
  const out: Record<string, string> = { ...e.labels };
  (e.locality ?? '').split('/').forEach((part, i) => {
    if (part) out[TOPOLOGY[i]] = part;
  });
  if (e.network) out[NETWORK_LABEL] = e.network;
  return Object.keys(out).length ? out : undefined;
}

/** The mesh workloads a `workloadSelector` picks: sidecars in the entry's namespace. */
function selectedWorkloads(index: MeshIndex, se: Resource<ServiceEntrySpec>): ProxyNode[] {
  const labels = se.spec.workloadSelector?.labels;
  return index.proxies.filter(
    (p) =>
      p.role === 'sidecar' && p.namespace === se.metadata.namespace && labelsMatch(labels ?? {}, p.labels),
  );
}

function entryEndpoints(
  index: MeshIndex,
  se: Resource<ServiceEntrySpec>,
  host: string,
  sePort: ServiceEntryPort,
): Endpoint[] {
  const resolution = se.spec.resolution ?? 'NONE';
  if (resolution === 'NONE') return [];
  if (se.spec.workloadSelector) return selectedWorkloads(index, se).map((n) => endpointOf(index, n));
  const port = sePort.targetPort ?? sePort.number;
  const endpoints: Endpoint[] = (se.spec.endpoints ?? [])
    .filter((e) => e.address && !e.address.startsWith('unix://'))
    .map((e) => {
      const labels = entryEndpointLabels(e);
      return {
        address: e.address!,
        port: e.ports?.[sePort.name] ?? port,
        ...(labels ? { labels } : {}),
        healthy: true,
        // Unset or 0 is 1, as Envoy takes it.
        ...(e.weight !== undefined && e.weight > 1 ? { weight: e.weight } : {}),
      };
    });
  // DNS without endpoints: the host itself, resolved by the proxy (validation refuses a wildcard).
  if (
    endpoints.length === 0 &&
    (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') &&
    !host.includes('*')
  )
    endpoints.push({ address: host, port, healthy: true });
  return endpoints;
}

/** The cluster of a ServiceEntry host:port, if an entry defines it. */
export function routedEntryCluster(
  index: MeshIndex,
  host: string,
  port: number,
  subset: string | undefined,
  dr: Resource<DestinationRuleSpec> | undefined,
): Cluster | undefined {
  const e = entryPortsOf(index).get(`${host}:${port}`);
  if (!e) return undefined;
  const r = serviceEntryCluster(index, e.entry, host, port, subset, dr);
  return 'cluster' in r ? r.cluster : undefined;
}

/**
 * The cluster `outbound|<port>|<subset>|<host>` of a ServiceEntry host, or why it cannot have one;
 * `dr` is the DestinationRule the proxy's namespace looks up for the host (export-to.ts).
 */
export function serviceEntryCluster(
  index: MeshIndex,
  se: Resource<ServiceEntrySpec>,
  host: string,
  port: number,
  subset: string | undefined,
  dr: Resource<DestinationRuleSpec> | undefined,
): { cluster: Cluster } | { error: string } {
  const ref = `ServiceEntry ${se.metadata.namespace}/${se.metadata.name}`;
  const sePort = se.spec.ports?.find((p) => p.number === port);
  if (!sePort) return { error: `${ref} has no port ${port} for ${host}` };
  const resolution = se.spec.resolution ?? 'NONE';
  if (resolution === 'DYNAMIC_DNS')
    return { error: `${ref} has resolution DYNAMIC_DNS, which Trellis does not route` };
  const all = entryEndpoints(index, se, host, sePort);
  const subsetSpec = subset ? dr?.spec.subsets?.find((s) => s.name === subset) : undefined;
  const subsetLabels = subsetSpec?.labels;
  // As for mesh services, a subset the DestinationRule does not define selects nothing; one without
  // labels selects every endpoint.
  const endpoints = !subset
    ? all
    : !subsetSpec
      ? []
      : subsetLabels
        ? all.filter((e) => labelsMatch(subsetLabels, e.labels ?? {}))
        : all;
  const policy = resolvePolicy(dr?.spec.trafficPolicy, subsetSpec?.trafficPolicy, port);
  const locality = localityLb(
    policy.loadBalancer,
    policy.outlierDetection,
    index.meshConfig.localityLbSetting,
  );
  const pool = connectionPool(policy.connectionPool, policy.retryBudget, index.meshConfig);
  const outlier = outlierDetection(policy.outlierDetection);
  const passthrough = resolution === 'NONE';
  const dns =
    (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && !se.spec.workloadSelector
      ? { mode: resolution === 'DNS' ? ('STRICT' as const) : ('LOGICAL' as const), refreshMs: DNS_REFRESH_MS }
      : undefined;
  return {
    cluster: {
      name: outboundClusterName(port, subset, host),
      direction: 'outbound',
      service: host,
      port,
      ...(subset ? { subset } : {}),
      origin: dr ? `${ref}, DestinationRule ${dr.metadata.namespace}/${dr.metadata.name}` : ref,
      // Original destination has one address per request: nothing to balance.
      lb: passthrough ? { type: 'PASSTHROUGH' } : loadBalancerPolicy(policy.loadBalancer),
      ...(locality && !passthrough ? { locality } : {}),
      tls: entryTls(policy.tls, index, se, host, port, subset, dr?.metadata.namespace),
      ...(pool ? { connectionPool: pool } : {}),
      ...(outlier && !passthrough ? { outlierDetection: outlier } : {}),
      ...(dns ? { dns } : {}),
      endpoints,
    },
  };
}

/**
 * MESH_INTERNAL: mutual TLS unless the DestinationRule says otherwise, the server checked against
 * the entry's subjectAltNames and its endpoints' service accounts. MESH_EXTERNAL: plaintext unless
 * it says otherwise; without `sni` the host is sent, and (without subjectAltNames) checked.
 */
function entryTls(
  tls: ClientTLSSettings | undefined,
  index: MeshIndex,
  se: Resource<ServiceEntrySpec>,
  host: string,
  port: number,
  subset: string | undefined,
  drNamespace: string | undefined,
): UpstreamTls {
  const internal = se.spec.location === 'MESH_INTERNAL';
  if (tls?.mode === 'ISTIO_MUTUAL' || (internal && tls?.mode === undefined)) {
    const td = index.mesh.trustDomain;
    const accounts = se.spec.workloadSelector
      ? selectedWorkloads(index, se).map((n) => endpointIdentity(td, n))
      : (se.spec.endpoints ?? []).flatMap((e) =>
          e.serviceAccount ? [`spiffe://${td}/ns/${se.metadata.namespace}/sa/${e.serviceAccount}`] : [],
        );
    const identities = [...new Set([...(se.spec.subjectAltNames ?? []), ...accounts])].sort();
    return { mode: 'ISTIO_MUTUAL', sni: outboundSni(port, subset, host), identities };
  }
  const out = upstreamTls(tls, { mode: 'DISABLE' }, credentialIn(index, drNamespace));
  return out.mode === 'SIMPLE' || out.mode === 'MUTUAL'
    ? { ...out, sni: out.sni ?? (host.includes('*') ? undefined : host) }
    : out;
}

const inboundMemo = new WeakMap<MeshIndex, Map<string, InboundService[]>>();

/**
 * Proxy id → the ServiceEntry host ports its workload serves through a `workloadSelector`, so its
 * inbound listener knows the SNI client proxies send for them.
 */
export function entryInboundServices(index: MeshIndex): Map<string, InboundService[]> {
  let out = inboundMemo.get(index);
  if (out) return out;
  out = new Map();
  for (const e of entryPortsOf(index).values()) {
    if (!e.entry.spec.workloadSelector) continue;
    for (const node of selectedWorkloads(index, e.entry)) {
      const want = e.servicePort.targetPort ?? e.port;
      const targetPort = node.ports.some((p) => p.port === want) ? want : node.ports[0]?.port;
      if (targetPort === undefined) continue;
      const list = out.get(node.id) ?? [];
      list.push({ host: e.host, port: e.port, targetPort });
      out.set(node.id, list);
    }
  }
  inboundMemo.set(index, out);
  return out;
}
