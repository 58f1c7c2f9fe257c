// The external authorizer of a workload's CUSTOM AuthorizationPolicies: the mesh config
// extension provider they name, resolved to what the proxy needs to ask it — the cluster that
// reaches it and the check's settings with Istio's defaults. Istio allows one provider per workload;
// a second one, an unknown name or a service that cannot be reached makes the CUSTOM policies
// unusable, and the proxy then denies what they match (fail closed) and says why.

import {
  DEFAULT_EXT_AUTHZ_TIMEOUT_MS,
  type ExtAuthzHttpSpec,
  type ExtensionProvider,
} from '../api/kinds/extension-provider.ts';
import { parseDuration } from '../api/schema.ts';
import { ClusterSet } from './clusters.ts';
import { destinationRuleFor } from './export-to.ts';
import type { MeshIndex } from './mesh-index.ts';
import { serviceEntryCluster } from './service-entries.ts';
import type { AuthorizationPolicyRules, Cluster, ExtAuthz, ExtAuthzProvider } from './snapshot.ts';

/** Where providers are defined, for messages. */
export const EXT_AUTHZ_CONFIG = 'mesh config (ConfigMap istio-system/istio, key mesh) extensionProviders';

/** Authorizer clusters by name, per index: the proxy's cluster list takes them from here. */
const authorizerClusters = new WeakMap<MeshIndex, Map<string, Cluster>>();

/** The cluster a resolved provider names. */
export function extAuthzCluster(index: MeshIndex, extAuthz: ExtAuthz | undefined): Cluster | undefined {
  return extAuthz && 'cluster' in extAuthz ? authorizerClusters.get(index)?.get(extAuthz.cluster) : undefined;
}

/** The provider the CUSTOM policies name, or why they cannot ask one. */
export function resolveExtAuthz(index: MeshIndex, custom: readonly AuthorizationPolicyRules[]): ExtAuthz {
  const r = resolve(index, custom);
  if (r.cluster) {
    let built = authorizerClusters.get(index);
    if (!built) {
      built = new Map();
      authorizerClusters.set(index, built);
    }
    built.set(r.cluster.name, r.cluster);
  }
  return r.extAuthz;
}

function resolve(
  index: MeshIndex,
  custom: readonly AuthorizationPolicyRules[],
): { extAuthz: ExtAuthz; cluster?: Cluster } {
  const names = [...new Set(custom.map((p) => p.provider ?? ''))].sort();
  if (names.length > 1) {
    const by = names.map(
      (n) =>
        `${n} (${custom
          .filter((p) => p.provider === n)
          .map((p) => p.name)
          .join(', ')})`,
    );
    return {
      extAuthz: {
        error: `CUSTOM policies on this workload name ${names.length} providers, ${by.join(' and ')}: Istio allows one per workload`,
      },
    };
  }
  const name = names[0];
  const provider = index.meshConfig.extensionProviders.find((p) => p.name === name);
  if (!provider)
    return {
      extAuthz: { error: `extension provider ${JSON.stringify(name)} is not defined in ${EXT_AUTHZ_CONFIG}` },
    };
  const spec = provider.envoyExtAuthzHttp ?? provider.envoyExtAuthzGrpc;
  if (!spec) {
    const kind = Object.keys(provider).find((k) => k !== 'name') ?? 'unknown';
    return {
      extAuthz: {
        error: `extension provider ${JSON.stringify(name)} is a ${kind} provider, not envoyExtAuthzHttp or envoyExtAuthzGrpc`,
      },
    };
  }
  const protocol = provider.envoyExtAuthzHttp ? 'HTTP' : 'GRPC';
  const target = authorizerCluster(index, spec.service, spec.port, protocol);
  if ('error' in target)
    return { extAuthz: { error: `extension provider ${JSON.stringify(name)}: ${target.error}` } };
  return { extAuthz: providerOf(provider, protocol, target.cluster.name), cluster: target.cluster };
}

/** Adds the authorizer's cluster to a proxy's clusters, where it is not there already. */
export function addExtAuthzCluster(clusters: ClusterSet, cluster: Cluster | undefined): void {
  if (cluster && !clusters.clusters.has(cluster.name)) clusters.clusters.set(cluster.name, cluster);
}

function providerOf(p: ExtensionProvider, protocol: 'HTTP' | 'GRPC', cluster: string): ExtAuthzProvider {
  const spec = (p.envoyExtAuthzHttp ?? p.envoyExtAuthzGrpc)!;
  const http: ExtAuthzHttpSpec = p.envoyExtAuthzHttp ?? { service: spec.service, port: spec.port };
  const out: ExtAuthzProvider = {
    name: p.name,
    protocol,
    cluster,
    timeoutMs: spec.timeout ? parseDuration(spec.timeout)! : DEFAULT_EXT_AUTHZ_TIMEOUT_MS,
    failOpen: spec.failOpen ?? false,
    statusOnError: spec.statusOnError === undefined ? 403 : Number(spec.statusOnError),
  };
  if (http.pathPrefix) out.pathPrefix = http.pathPrefix;
  const lower = (l: string[] | undefined) => (l?.length ? l.map((h) => h.toLowerCase()) : undefined);
  const include = lower(http.includeRequestHeadersInCheck ?? http.includeHeadersInCheck);
  if (include) out.includeRequestHeaders = include;
  const extra = Object.entries(http.includeAdditionalHeadersInCheck ?? {});
  if (extra.length)
    out.includeAdditionalHeaders = extra.map(([name, value]) => ({ name: name.toLowerCase(), value }));
  const body = spec.includeRequestBodyInCheck;
  if (body)
    out.includeRequestBody = {
      // Envoy's BufferSettings need a limit; Istio leaves it to Envoy, which has no default: 4 KiB is Istio's sample's.
      maxRequestBytes: body.maxRequestBytes ?? 4096,
      allowPartialMessage: body.allowPartialMessage ?? false,
      packAsBytes: body.packAsBytes ?? false,
    };
  const up = lower(http.headersToUpstreamOnAllow);
  if (up) out.headersToUpstreamOnAllow = up;
  const deny = lower(http.headersToDownstreamOnDeny);
  if (deny) out.headersToDownstreamOnDeny = deny;
  const allow = lower(http.headersToDownstreamOnAllow);
  if (allow) out.headersToDownstreamOnAllow = allow;
  return out;
}

/**
 * A mesh service is reached as any other upstream, over mutual TLS through its sidecar; a host a
 * ServiceEntry defines with endpoints (an authorizer beside the proxy, or outside the mesh) at those
 * endpoints, in plaintext unless its DestinationRule sets TLS. gRPC needs the second: the sidecar speaks HTTP/1.1 to its app.
 */
function authorizerCluster(
  index: MeshIndex,
  service: string,
  port: number,
  protocol: 'HTTP' | 'GRPC',
): { cluster: Cluster } | { error: string } {
  const slash = service.indexOf('/');
  const host = slash < 0 ? service : service.slice(slash + 1);
  const namespace = slash < 0 ? undefined : service.slice(0, slash);
  const svc = index.services.get(host);
  if (svc && (namespace === undefined || svc.namespace === namespace)) {
    if (!svc.ports.some((p) => p.port === port))
      return {
        error: `service ${host} has no port ${port} (it has ${svc.ports.map((p) => p.port).join(', ') || 'none'})`,
      };
    if (protocol === 'GRPC')
      return {
        error: `service ${host} is a mesh service: Trellis' sidecar speaks HTTP/1.1 to its app, so a gRPC authorizer must be reached directly; define its address with a ServiceEntry (resolution STATIC)`,
      };
    return { cluster: meshCluster(index, host, port) };
  }
  const entry = index.serviceEntries.find(
    (se) => se.spec.hosts.includes(host) && (namespace === undefined || se.metadata.namespace === namespace),
  );
  if (entry) {
    const dr = destinationRuleFor(index, host, entry.metadata.namespace, index.meshConfig.rootNamespace);
    return serviceEntryCluster(index, entry, host, port, undefined, dr);
  }
  return {
    error: `service ${service} is neither a Service in the registry nor a ServiceEntry host`,
  };
}

/** The registry service's outbound cluster, built as routes build it. */
function meshCluster(index: MeshIndex, host: string, port: number): Cluster {
  // A throwaway set: the cluster itself is memoized per index, so this builds it at most once. An
  // extension provider is mesh config, so its rules are looked up as for the root namespace.
  const set = new ClusterSet(index, index.meshConfig.rootNamespace);
  return set.clusters.get(set.outbound(host, port, undefined))!;
}
