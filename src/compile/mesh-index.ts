// The mesh as compile sees it: services, their endpoints and the routing resources, indexed once
// per change and shared by every proxy's compile.

import { EXPORT_TO_ANNOTATION, exportToAnnotation } from '../api/kinds/common.ts';
import type {
  AuthorizationPolicySpec,
  DestinationRuleSpec,
  GatewaySpec,
  PeerAuthenticationSpec,
  RequestAuthenticationSpec,
  ServiceEntrySpec,
  ServiceSpec,
  SidecarSpec,
  VirtualServiceSpec,
} from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { kindKey } from '../api/resource.ts';
import { clusterIps } from './cluster-ips.ts';
import { resolveHost, serviceFqdn } from './hosts.ts';
import { convertLegacyRbac } from './legacy-rbac.ts';
import { isMeshConfigMap, type ResolvedMeshConfig, resolveMeshConfig } from './mesh-config.ts';
import { type Protocol, servicePortProtocol } from './protocol.ts';

export type { DestinationRuleSpec, GatewaySpec, VirtualServiceSpec };

import type { Endpoint, ProxyNode } from './snapshot.ts';

export interface MeshConfig {
  trustDomain: string;
}

export interface CompileInput {
  revision: number;
  resources: readonly Resource[];
  /** Every connected proxy: the registry's workload instances. */
  proxies: readonly ProxyNode[];
  mesh: MeshConfig;
  /**
   * Key sets the control plane fetched for RequestAuthentication, by source (`jwksSource`): like the
   * registry, an input compile reads and never fetches.
   */
  jwks?: ReadonlyMap<string, JwksState>;
  /** The state directory's credential store (`tls.credentialName`), by `namespace/name`. */
  credentials?: ReadonlyMap<string, Credential>;
}

/** PEM texts of one credential, as the control plane read them; any may be missing. */
export interface Credential {
  certificateChain?: string;
  privateKey?: string;
  caCertificates?: string;
}

/** A fetched key set: the last good one (kept when a refresh fails), or why there is none. */
export interface JwksState {
  jwks?: string;
  error?: string;
}

/** The key a jwtRule's remote key set is fetched by: its `jwksUri`, else OpenID discovery of its issuer. */
export function jwksSource(rule: { issuer: string; jwksUri?: string }): string {
  return rule.jwksUri ?? `oidc:${rule.issuer}`;
}

export interface ServicePort {
  name?: string;
  port: number;
  targetPort: number | string;
  appProtocol?: string;
  /** Protocol selection's answer (protocol.ts). */
  protocol: Protocol;
}

export interface MeshService {
  fqdn: string;
  name: string;
  namespace: string;
  selector: Record<string, string>;
  ports: ServicePort[];
  /** From the `networking.istio.io/exportTo` annotation (export-to.ts); undefined without one. */
  exportTo?: string[];
  /** Sidecar instances the selector picks, with the workload port each service port lands on. */
  instances: { node: ProxyNode; targetPorts: Map<number, number> }[];
}

export interface MeshIndex {
  revision: number;
  mesh: MeshConfig;
  /** From the istio ConfigMap's `mesh` key, defaults resolved. */
  meshConfig: ResolvedMeshConfig;
  /** By FQDN. */
  services: Map<string, MeshService>;
  /** Sorted oldest first: for sidecars the first VirtualService for a host wins, as in Istio. */
  virtualServices: Resource<VirtualServiceSpec>[];
  /** By resolved host, oldest first; which of them a proxy uses is export-to.ts' lookup. */
  destinationRules: Map<string, Resource<DestinationRuleSpec>[]>;
  gateways: Resource<GatewaySpec>[];
  /** Oldest first: within one level of precedence the oldest policy wins, as in Istio. */
  peerAuthentications: Resource<PeerAuthenticationSpec>[];
  /** Oldest first. */
  requestAuthentications: Resource<RequestAuthenticationSpec>[];
  jwks: ReadonlyMap<string, JwksState>;
  credentials: ReadonlyMap<string, Credential>;
  /** Sorted by namespace and name. */
  authorizationPolicies: Resource<AuthorizationPolicySpec>[];
  /** Oldest first: sidecar routes to their hosts (service-entries.ts) and ext-authz providers. */
  serviceEntries: Resource<ServiceEntrySpec>[];
  /** Oldest first: of several Sidecars for one workload the oldest applies (sidecar-scope.ts). */
  sidecars: Resource<SidecarSpec>[];
  /** Every connected proxy: a ServiceEntry's workloadSelector picks its endpoints among them. */
  proxies: readonly ProxyNode[];
  /** Service VIP → FQDN (cluster-ips.ts): how a captured connection's destination names its service. */
  addresses?: Record<string, string>;
}

const K = {
  service: kindKey('v1', 'Service'),
  virtualService: kindKey('networking.istio.io/v1', 'VirtualService'),
  destinationRule: kindKey('networking.istio.io/v1', 'DestinationRule'),
  gateway: kindKey('networking.istio.io/v1', 'Gateway'),
  peerAuthentication: kindKey('security.istio.io/v1', 'PeerAuthentication'),
  requestAuthentication: kindKey('security.istio.io/v1', 'RequestAuthentication'),
  authorizationPolicy: kindKey('security.istio.io/v1', 'AuthorizationPolicy'),
  serviceEntry: kindKey('networking.istio.io/v1', 'ServiceEntry'),
  sidecar: kindKey('networking.istio.io/v1', 'Sidecar'),
};

export function labelsMatch(
  selector: Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

function byAge(a: Resource, b: Resource): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  return byName(a, b);
}

function byName(a: Resource, b: Resource): number {
  const na = `${a.metadata.namespace}/${a.metadata.name}`;
  const nb = `${b.metadata.namespace}/${b.metadata.name}`;
  return na < nb ? -1 : na > nb ? 1 : 0;
}

export function buildMeshIndex(input: CompileInput): MeshIndex {
  const services = new Map<string, MeshService>();
  const virtualServices: Resource<VirtualServiceSpec>[] = [];
  const destinationRules = new Map<string, Resource<DestinationRuleSpec>[]>();
  const gateways: Resource<GatewaySpec>[] = [];
  const peerAuthentications: Resource<PeerAuthenticationSpec>[] = [];
  const requestAuthentications: Resource<RequestAuthenticationSpec>[] = [];
  const authorizationPolicies: Resource<AuthorizationPolicySpec>[] = [];
  const drs: Resource<DestinationRuleSpec>[] = [];
  const serviceEntries: Resource<ServiceEntrySpec>[] = [];
  const sidecarResources: Resource<SidecarSpec>[] = [];
  let meshConfigMap: Resource | undefined;

  for (const r of input.resources) {
    if (isMeshConfigMap(r)) meshConfigMap = r;
    const key = kindKey(r.apiVersion, r.kind);
    if (key === K.service) {
      const spec = r.spec as ServiceSpec;
      const fqdn = serviceFqdn(r.metadata.name, r.metadata.namespace);
      const exported = r.metadata.annotations?.[EXPORT_TO_ANNOTATION];
      services.set(fqdn, {
        fqdn,
        name: r.metadata.name,
        namespace: r.metadata.namespace,
        selector: spec.selector ?? {},
        ports: (spec.ports ?? []).map((p) => ({
          name: p.name,
          port: p.port,
          targetPort: p.targetPort ?? p.port,
          ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}),
          protocol: servicePortProtocol(p),
        })),
        ...(exported !== undefined ? { exportTo: exportToAnnotation(exported) } : {}),
        instances: [],
      });
    } else if (key === K.virtualService) virtualServices.push(r as Resource<VirtualServiceSpec>);
    else if (key === K.destinationRule) drs.push(r as Resource<DestinationRuleSpec>);
    else if (key === K.gateway) gateways.push(r as Resource<GatewaySpec>);
    else if (key === K.peerAuthentication) peerAuthentications.push(r as Resource<PeerAuthenticationSpec>);
    else if (key === K.requestAuthentication)
      requestAuthentications.push(r as Resource<RequestAuthenticationSpec>);
    else if (key === K.authorizationPolicy)
      authorizationPolicies.push(r as Resource<AuthorizationPolicySpec>);
    else if (key === K.serviceEntry) serviceEntries.push(r as Resource<ServiceEntrySpec>);
    else if (key === K.sidecar) sidecarResources.push(r as Resource<SidecarSpec>);
  }

  // A service without a selector has no endpoints from workloads (Kubernetes semantics). Candidates
  // come from an index by namespace and one selector label, so this is not services × proxies.
  // Gateways too: a Service selecting an egress gateway reaches its listeners (Istio's egress pattern).
  const sidecars = [...input.proxies].sort((a, b) => (a.id < b.id ? -1 : 1));
  const byLabel = new Map<string, ProxyNode[]>();
  for (const node of sidecars) {
    for (const [k, v] of Object.entries(node.labels)) {
      const key = JSON.stringify([node.namespace, k, v]);
      const list = byLabel.get(key);
      if (list) list.push(node);
      else byLabel.set(key, [node]);
    }
  }
  for (const svc of services.values()) {
    const first = Object.entries(svc.selector)[0];
    if (!first) continue;
    for (const node of byLabel.get(JSON.stringify([svc.namespace, first[0], first[1]])) ?? []) {
      if (!labelsMatch(svc.selector, node.labels)) continue;
      const targetPorts = new Map<number, number>();
      for (const sp of svc.ports) {
        const wp =
          typeof sp.targetPort === 'number'
            ? node.ports.find((p) => p.port === sp.targetPort)
            : node.ports.find((p) => p.name === sp.targetPort);
        if (wp) targetPorts.set(sp.port, wp.port);
      }
      if (targetPorts.size > 0) svc.instances.push({ node, targetPorts });
    }
  }

  authorizationPolicies.push(...legacyPolicies(input.resources, services));

  for (const dr of drs.sort(byAge)) {
    const host = resolveHost(dr.spec.host, dr.metadata.namespace);
    const seen = destinationRules.get(host);
    if (seen) seen.push(dr);
    else destinationRules.set(host, [dr]);
  }

  return {
    revision: input.revision,
    mesh: input.mesh,
    meshConfig: resolveMeshConfig(meshConfigMap),
    services,
    virtualServices: virtualServices.sort(byAge),
    destinationRules,
    gateways: gateways.sort(byAge),
    peerAuthentications: peerAuthentications.sort(byAge),
    requestAuthentications: requestAuthentications.sort(byAge),
    jwks: input.jwks ?? new Map(),
    credentials: input.credentials ?? new Map(),
    authorizationPolicies: authorizationPolicies.sort(byName),
    serviceEntries: serviceEntries.sort(byAge),
    sidecars: sidecarResources.sort(byAge),
    proxies: input.proxies,
    addresses: vipAddresses(input.resources),
  };
}

function vipAddresses(resources: readonly Resource[]): Record<string, string> {
  const services = resources
    .filter((r) => kindKey(r.apiVersion, r.kind) === K.service)
    .map((r) => ({
      fqdn: serviceFqdn(r.metadata.name, r.metadata.namespace),
      clusterIP: (r.spec as ServiceSpec).clusterIP,
    }));
  const out: Record<string, string> = {};
  for (const [fqdn, ip] of clusterIps(services)) out[ip] = fqdn;
  return out;
}

/** The legacy RBAC kinds, enforced as the AuthorizationPolicies they convert to. */
export function legacyPolicies(
  resources: readonly Resource[],
  services: ReadonlyMap<string, MeshService>,
): Resource<AuthorizationPolicySpec>[] {
  return convertLegacyRbac(
    resources,
    [...services.values()].map((s) => ({
      fqdn: s.fqdn,
      name: s.name,
      namespace: s.namespace,
      selector: s.selector,
      serviceAccounts: [...new Set(s.instances.map((i) => i.node.serviceAccount))],
    })),
  );
}

export function endpointIdentity(trustDomain: string, node: ProxyNode): string {
  return `spiffe://${trustDomain}/ns/${node.namespace}/sa/${node.serviceAccount}`;
}

export function endpointOf(index: MeshIndex, node: ProxyNode): Endpoint {
  return {
    address: node.address,
    port: node.inboundPort ?? 0,
    identity: endpointIdentity(index.mesh.trustDomain, node),
    labels: node.labels,
    workload: node.workload,
    namespace: node.namespace,
    healthy: node.healthy,
  };
}
