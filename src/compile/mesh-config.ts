// Mesh config with Istio's defaults resolved: the `mesh` key of the istio ConfigMap in istio-system,
// which the API has validated already. No ConfigMap, no key, or an empty document: every default.
import type { ConfigMapSpec } from '../api/kinds/config-map.ts';
import type { HTTPRetry } from '../api/kinds/http-route.ts';
import { type ExtensionProvider, MESH_CONFIG_MAP, parseMeshConfig } from '../api/kinds/mesh-config.ts';
import type { LocalityLoadBalancerSetting } from '../api/kinds/traffic-policy.ts';
import type { Resource } from '../api/resource.ts';
import { kindKey } from '../api/resource.ts';
import { parseDuration } from '../api/schema.ts';
import type { PathNormalization } from './snapshot.ts';

export interface ResolvedMeshConfig {
  /** Where mesh-wide policies live. */
  rootNamespace: string;
  pathNormalization: PathNormalization;
  /** Other trust domains whose identities count as this mesh's, in AuthorizationPolicy principals. */
  trustDomainAliases: string[];
  /** As written: compile resolves the one a workload's CUSTOM policies name. */
  extensionProviders: ExtensionProvider[];
  /** Replaces Istio's built-in default retry policy; as written. */
  defaultHttpRetryPolicy?: HTTPRetry;
  /** For DestinationRules that set no localityLbSetting; as written. */
  localityLbSetting?: LocalityLoadBalancerSetting;
  h2UpgradePolicy: 'DO_NOT_UPGRADE' | 'UPGRADE';
  connectTimeoutMs: number;
  tcpKeepalive?: { probes?: number; time?: string; interval?: string };
  /** Where a sidecar sends a request for a host the registry does not know; Trellis' default REGISTRY_ONLY. */
  outboundTrafficPolicy: 'REGISTRY_ONLY' | 'ALLOW_ANY';
  /** exportTo of the resources that set none (export-to.ts); Istio's default `*` for each. */
  defaultExportTo: { service: string[]; virtualService: string[]; destinationRule: string[] };
}

export const DEFAULT_MESH_CONFIG: ResolvedMeshConfig = {
  rootNamespace: 'istio-system',
  pathNormalization: 'BASE',
  trustDomainAliases: [],
  extensionProviders: [],
  h2UpgradePolicy: 'DO_NOT_UPGRADE',
  connectTimeoutMs: 10_000,
  outboundTrafficPolicy: 'REGISTRY_ONLY',
  defaultExportTo: { service: ['*'], virtualService: ['*'], destinationRule: ['*'] },
};

const CONFIG_MAP = kindKey('v1', 'ConfigMap');

/** The istio ConfigMap among `resources`, if any. */
export function isMeshConfigMap(r: Resource): boolean {
  return (
    kindKey(r.apiVersion, r.kind) === CONFIG_MAP &&
    r.metadata.name === MESH_CONFIG_MAP.name &&
    r.metadata.namespace === MESH_CONFIG_MAP.namespace
  );
}

export function resolveMeshConfig(configMap: Resource | undefined): ResolvedMeshConfig {
  const text = (configMap?.spec as ConfigMapSpec | undefined)?.data?.[MESH_CONFIG_MAP.key];
  // The API refused an invalid one, so a value that does not parse cannot be here; defaults are safe.
  const mesh = text === undefined ? undefined : parseMeshConfig(text).value;
  const normalization = mesh?.pathNormalization?.normalization;
  return {
    rootNamespace: mesh?.rootNamespace ?? DEFAULT_MESH_CONFIG.rootNamespace,
    pathNormalization: normalization === undefined || normalization === 'DEFAULT' ? 'BASE' : normalization,
    trustDomainAliases: mesh?.trustDomainAliases ?? [],
    extensionProviders: mesh?.extensionProviders ?? [],
    ...(mesh?.defaultHttpRetryPolicy ? { defaultHttpRetryPolicy: mesh.defaultHttpRetryPolicy } : {}),
    ...(mesh?.localityLbSetting ? { localityLbSetting: mesh.localityLbSetting } : {}),
    h2UpgradePolicy: mesh?.h2UpgradePolicy ?? 'DO_NOT_UPGRADE',
    connectTimeoutMs: (mesh?.connectTimeout && parseDuration(mesh.connectTimeout)) || 10_000,
    ...(mesh?.tcpKeepalive ? { tcpKeepalive: mesh.tcpKeepalive } : {}),
    outboundTrafficPolicy: mesh?.outboundTrafficPolicy?.mode ?? DEFAULT_MESH_CONFIG.outboundTrafficPolicy,
    defaultExportTo: {
      service: nonEmpty(mesh?.defaultServiceExportTo) ?? ['*'],
      virtualService: nonEmpty(mesh?.defaultVirtualServiceExportTo) ?? ['*'],
      destinationRule: nonEmpty(mesh?.defaultDestinationRuleExportTo) ?? ['*'],
    },
  };
}

/** An empty default list means no default was given, as in Istio. */
function nonEmpty(list: string[] | undefined): string[] | undefined {
  return list && list.length > 0 ? list : undefined;
}
