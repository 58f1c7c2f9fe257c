// The Sidecar resource, as Istio applies it: which one a sidecar proxy takes (its workload's, else its
// namespace's, else the mesh default in the root namespace), and what that makes the proxy see — the
// hosts each egress listener imports, by the namespace of the config that defines them and their DNS
// name, per port — where its ingress ports go, and its outbound traffic policy. Pure: compile asks.
import {
  defaultEndpointPort,
  type OutboundTrafficPolicyMode,
  parseSidecarHost,
  type SidecarSpec,
} from '../api/kinds/sidecar.ts';
import { hostCovers } from '../api/kinds/syntax.ts';
import type { Resource } from '../api/resource.ts';
import { labelsMatch, type MeshIndex } from './mesh-index.ts';
import type { ProxyNode } from './snapshot.ts';

/** One egress listener: `port` absent catches every port no other listener names. */
interface EgressScope {
  port?: number;
  /** `ns` is `*` or a namespace name (`.` resolved to the proxy's); `~` imports nothing. */
  hosts: { ns: string; dns: string }[];
}

export interface SidecarScope {
  /** `Sidecar <namespace>/<name>`, for explaining what a proxy does not see. */
  origin: string;
  /** Port listeners first, in order, then the portless one if any. */
  egress: EgressScope[];
  outboundTrafficPolicy?: OutboundTrafficPolicyMode;
  /** Workload port → the app port its ingress listener's defaultEndpoint forwards to. */
  ingress: Map<number, number>;
}

const hasSelector = (s: Resource<SidecarSpec>) =>
  Object.keys(s.spec.workloadSelector?.labels ?? {}).length > 0;

/**
 * The Sidecar a sidecar proxy takes, as Istio picks it: one in its namespace whose workloadSelector
 * matches it, else its namespace's selector-less one, else the root namespace's selector-less one.
 * Within a level the oldest wins (`sidecars` is oldest first); conflicts are warned at apply.
 */
export function selectSidecar(
  sidecars: readonly Resource<SidecarSpec>[],
  node: ProxyNode,
  rootNamespace: string,
): Resource<SidecarSpec> | undefined {
  if (node.role !== 'sidecar') return undefined;
  let namespaceWide: Resource<SidecarSpec> | undefined;
  let meshWide: Resource<SidecarSpec> | undefined;
  for (const s of sidecars) {
    const ns = s.metadata.namespace;
    if (hasSelector(s)) {
      if (ns === node.namespace && labelsMatch(s.spec.workloadSelector?.labels, node.labels)) return s;
    } else if (ns === node.namespace) namespaceWide ??= s;
    else if (ns === rootNamespace) meshWide ??= s;
  }
  return namespaceWide ?? meshWide;
}

/**
 * What a Sidecar makes a proxy in `namespace` see. `.` is the proxy's namespace, also for the mesh
 * default in the root namespace; without egress listeners the proxy imports `*\/*`, as in Istio.
 */
export function sidecarScope(sidecar: Resource<SidecarSpec>, namespace: string): SidecarScope {
  const egress: EgressScope[] = (sidecar.spec.egress ?? [{ hosts: ['*/*'] }]).map((l) => ({
    ...(l.port ? { port: l.port.number } : {}),
    hosts: l.hosts.flatMap((h) => {
      const parsed = parseSidecarHost(h);
      if (!parsed || parsed.ns === '~') return [];
      return [{ ns: parsed.ns === '.' ? namespace : parsed.ns, dns: parsed.dns }];
    }),
  }));
  const ingress = new Map<number, number>();
  for (const l of sidecar.spec.ingress ?? []) {
    const to = l.defaultEndpoint ? defaultEndpointPort(l.defaultEndpoint) : undefined;
    if (to !== undefined) ingress.set(l.port.number, to);
  }
  const mode = sidecar.spec.outboundTrafficPolicy?.mode;
  return {
    origin: `Sidecar ${sidecar.metadata.namespace}/${sidecar.metadata.name}`,
    egress,
    ...(mode ? { outboundTrafficPolicy: mode } : {}),
    ingress,
  };
}

const scopes = new WeakMap<MeshIndex, Map<string, SidecarScope | undefined>>();

/** The scope of the Sidecar that applies to a proxy, if any; worked out once per index and proxy. */
export function scopeOf(index: MeshIndex, node: ProxyNode): SidecarScope | undefined {
  let byProxy = scopes.get(index);
  if (!byProxy) {
    byProxy = new Map();
    scopes.set(index, byProxy);
  }
  if (byProxy.has(node.id)) return byProxy.get(node.id);
  const sidecar = selectSidecar(index.sidecars, node, index.meshConfig.rootNamespace);
  const scope = sidecar && sidecarScope(sidecar, node.namespace);
  byProxy.set(node.id, scope);
  return scope;
}

/** The egress listener traffic to `port` goes through: the one naming the port, else the portless one. */
function listenerFor(scope: SidecarScope, port: number): EgressScope | undefined {
  return scope.egress.find((l) => l.port === port) ?? scope.egress.find((l) => l.port === undefined);
}

/** Either name covers the other: an egress `*.example.com` imports `a.example.com`, and the reverse. */
function overlaps(a: string, b: string): boolean {
  return hostCovers(a, b) || hostCovers(b, a);
}

function imports(l: EgressScope, namespace: string, hosts: readonly string[]): boolean {
  return l.hosts.some((h) => (h.ns === '*' || h.ns === namespace) && hosts.some((x) => overlaps(h.dns, x)));
}

/**
 * Does the proxy see one of `hosts` on `port` when the config defining them (a Service, a
 * ServiceEntry, a VirtualService) lives in `namespace`? Without a scope it sees everything; without
 * a port, through any egress listener (a VirtualService for hosts that are no service).
 */
export function inScope(
  scope: SidecarScope | undefined,
  namespace: string,
  hosts: readonly string[],
  port?: number,
): boolean {
  if (!scope) return true;
  if (port === undefined) return scope.egress.some((l) => imports(l, namespace, hosts));
  const l = listenerFor(scope, port);
  return l !== undefined && imports(l, namespace, hosts);
}

export interface SidecarConflict {
  resource: string;
  path: string;
  message: string;
}

/**
 * Istio's IST0110 and IST0111, as warnings: the proxies take the oldest Sidecar, and the user should
 * know the others are ignored for them.
 */
export function sidecarConflicts(
  sidecars: readonly Resource<SidecarSpec>[],
  proxies: readonly ProxyNode[],
): SidecarConflict[] {
  const out: SidecarConflict[] = [];
  const ref = (s: Resource<SidecarSpec>) => `Sidecar ${s.metadata.namespace}/${s.metadata.name}`;
  const wide = new Map<string, Resource<SidecarSpec>>();
  for (const s of sidecars) {
    if (hasSelector(s)) continue;
    const first = wide.get(s.metadata.namespace);
    if (!first) wide.set(s.metadata.namespace, s);
    else
      out.push({
        resource: ref(s),
        path: 'spec.workloadSelector',
        message: `multiple Sidecars without workloadSelector in namespace ${s.metadata.namespace} (IST0111): ${ref(first)} is older and applies, this one is ignored`,
      });
  }
  const seen = new Set<string>();
  for (const node of proxies) {
    if (node.role !== 'sidecar') continue;
    const selecting = sidecars.filter(
      (s) =>
        hasSelector(s) &&
        s.metadata.namespace === node.namespace &&
        labelsMatch(s.spec.workloadSelector?.labels, node.labels),
    );
    const key = selecting.map(ref).join(',');
    if (selecting.length < 2 || seen.has(key)) continue;
    seen.add(key);
    for (const s of selecting.slice(1))
      out.push({
        resource: ref(s),
        path: 'spec.workloadSelector',
        message: `Sidecars ${selecting.map((x) => x.metadata.name).join(', ')} in namespace ${node.namespace} select the same workload ${node.workload} (IST0110): ${ref(selecting[0])} is older and applies, this one is ignored for it`,
      });
  }
  return out;
}
