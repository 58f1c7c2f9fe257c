// MeshConfig, as Istio reads it: a YAML document in the `mesh` key of the `istio` ConfigMap in
// istio-system. It is validated like a resource's spec, and its problems point into the ConfigMap's
// document (the line inside the `mesh: |` block). Fields Trellis acts on are checked fully; every
// other MeshConfig field is accepted with a warning that it is not enforced.
import { decodeDocuments, positionOf } from '../decode.ts';
import {
  any,
  array,
  type Ctx,
  duration,
  fail,
  object,
  type Problem,
  string,
  type Validator,
} from '../schema.ts';
import { exportTo } from './common.ts';
import {
  EXTENSION_PROVIDER_KINDS,
  type ExtensionProvider,
  extensionProviders,
} from './extension-provider.ts';
import { type HTTPRetry, retries } from './http-route.ts';
import { isDns1123Label } from './syntax.ts';
import { type LocalityLoadBalancerSetting, localityLbSetting, tcpKeepalive } from './traffic-policy.ts';

export type { ExtensionProvider };
export { EXTENSION_PROVIDER_KINDS };

/** Where Istio reads mesh config from. */
export const MESH_CONFIG_MAP = { namespace: 'istio-system', name: 'istio', key: 'mesh' } as const;

/** `mesh/v1alpha1/config.proto` ProxyPathNormalization.NormalizationType; DEFAULT means BASE. */
export const PATH_NORMALIZATIONS = [
  'DEFAULT',
  'NONE',
  'BASE',
  'MERGE_SLASHES',
  'DECODE_AND_MERGE_SLASHES',
] as const;

export type PathNormalizationType = (typeof PATH_NORMALIZATIONS)[number];

/** The part of MeshConfig Trellis enforces; the rest is accepted and warned about. */
export interface MeshConfigSpec {
  rootNamespace?: string;
  pathNormalization?: { normalization?: PathNormalizationType };
  trustDomainAliases?: string[];
  extensionProviders?: ExtensionProvider[];
  /** The retry policy of routes that set none, instead of Istio's built-in one. */
  defaultHttpRetryPolicy?: HTTPRetry;
  /** Locality balancing for DestinationRules that set none. */
  localityLbSetting?: LocalityLoadBalancerSetting;
  h2UpgradePolicy?: 'DO_NOT_UPGRADE' | 'UPGRADE';
  /** Default 10s. */
  connectTimeout?: string;
  tcpKeepalive?: { probes?: number; time?: string; interval?: string };
  /** Default (in Trellis) REGISTRY_ONLY: hosts outside the registry are refused. */
  outboundTrafficPolicy?: { mode?: 'REGISTRY_ONLY' | 'ALLOW_ANY' };
  /** exportTo of Services and ServiceEntries that set none; default `*`. */
  defaultServiceExportTo?: string[];
  /** exportTo of VirtualServices that set none; default `*`. */
  defaultVirtualServiceExportTo?: string[];
  /** exportTo of DestinationRules that set none; default `*`. */
  defaultDestinationRuleExportTo?: string[];
  [field: string]: unknown;
}

/** MeshConfig fields Istio defines that Trellis does not act on (yet). */
const NOT_ENFORCED_FIELDS = [
  'proxyListenPort',
  'proxyInboundListenPort',
  'proxyHttpPort',
  'protocolDetectionTimeout',
  'ingressClass',
  'ingressService',
  'ingressControllerMode',
  'ingressSelector',
  'enableTracing',
  'accessLogFile',
  'accessLogFormat',
  'accessLogEncoding',
  'enableEnvoyAccessLogService',
  'disableEnvoyListenerLog',
  'defaultConfig',
  'inboundTrafficPolicy',
  'configSources',
  'enableAutoMtls',
  'trustDomain',
  'caCertificates',
  'dnsRefreshRate',
  'inboundClusterStatName',
  'outboundClusterStatName',
  'certificates',
  'serviceSettings',
  'enablePrometheusMerge',
  'verifyCertificateAtClient',
  'ca',
  'defaultProviders',
  'discoverySelectors',
  'meshMTLS',
  'tlsDefaults',
  'serviceScopeConfigs',
];

const fields: Record<string, Validator> = {
  rootNamespace: string({
    check: (v, path, ctx) => {
      if (!isDns1123Label(v))
        fail(ctx, path, `${JSON.stringify(v)} is not a namespace name: expected a DNS-1123 label`);
    },
  }),
  pathNormalization: object({ normalization: string({ enum: PATH_NORMALIZATIONS }) }),
  trustDomainAliases: array(string()),
  extensionProviders,
  defaultHttpRetryPolicy: retries,
  localityLbSetting,
  h2UpgradePolicy: string({ enum: ['DO_NOT_UPGRADE', 'UPGRADE'] }),
  connectTimeout: duration(),
  tcpKeepalive,
  outboundTrafficPolicy: object({ mode: string({ enum: ['REGISTRY_ONLY', 'ALLOW_ANY'] }) }),
  defaultServiceExportTo: exportTo(),
  defaultVirtualServiceExportTo: exportTo(),
  defaultDestinationRuleExportTo: exportTo(),
};
for (const f of NOT_ENFORCED_FIELDS) fields[f] = any();

export const meshConfigSpec: Validator = object(fields, { notEnforced: NOT_ENFORCED_FIELDS });

export interface ParsedMeshConfig {
  /** Undefined when the text has errors. */
  value: MeshConfigSpec | undefined;
  /** Each with the path inside the mesh config and its line there. */
  errors: Problem[];
  warnings: Problem[];
}

/** Parses and validates the `mesh` text of the istio ConfigMap; an empty text is all defaults. */
export function parseMeshConfig(text: string): ParsedMeshConfig {
  const decoded = decodeDocuments(text);
  const errors: Problem[] = decoded.issues.map((i) => ({
    path: '',
    message: i.message,
    at: { line: i.line ?? 1, column: i.column ?? 1 },
  }));
  if (decoded.documents.length > 1)
    errors.push({
      path: '',
      message: 'mesh config must be one YAML document',
      at: { line: decoded.documents[1].line, column: 1 },
    });
  const doc = decoded.documents[0];
  if (errors.length > 0 || !doc) return { value: errors.length ? undefined : {}, errors, warnings: [] };
  const ctx: Ctx = { errors: [], warnings: [] };
  meshConfigSpec(doc.value, '', ctx);
  const at = (p: Problem): Problem => ({ ...p, at: positionOf(doc, p.path) });
  return {
    value: ctx.errors.length ? undefined : (doc.value as MeshConfigSpec),
    errors: ctx.errors.map(at),
    warnings: ctx.warnings.map(at),
  };
}
