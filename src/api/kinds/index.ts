// Every kind the API serves, and how users may name them (kind, plural, short name, `plural.group`).

import type { Resource } from '../resource.ts';
import { authorizationPolicy } from './authorization-policy.ts';
import { configMap } from './config-map.ts';
import { destinationRule } from './destination-rule.ts';
import { gateway } from './gateway.ts';
import { peerAuthentication } from './peer-authentication.ts';
import { clusterRbacConfig, rbacConfig, serviceRole, serviceRoleBinding } from './rbac.ts';
import { requestAuthentication } from './request-authentication.ts';
import { service } from './service.ts';
import { serviceEntry } from './service-entry.ts';
import { sidecar } from './sidecar.ts';
import type { KindInfo } from './types.ts';
import { virtualService } from './virtual-service.ts';
import { workload } from './workload.ts';

export type * from './authorization-policy.ts';
export type * from './common.ts';
export type * from './config-map.ts';
export type * from './destination-rule.ts';
export type * from './gateway.ts';
export type * from './peer-authentication.ts';
export type * from './rbac.ts';
export type * from './request-authentication.ts';
export type * from './service.ts';
export type * from './service-entry.ts';
export type * from './sidecar.ts';
export type { KindInfo } from './types.ts';
export type * from './virtual-service.ts';
export type * from './workload.ts';

export const kinds: KindInfo[] = [
  virtualService,
  destinationRule,
  gateway,
  serviceEntry,
  sidecar,
  peerAuthentication,
  requestAuthentication,
  authorizationPolicy,
  serviceRole,
  serviceRoleBinding,
  rbacConfig,
  clusterRbacConfig,
  service,
  configMap,
  workload,
];

/** Istio kinds Trellis recognizes but does not serve yet, by group. */
export const unsupportedKinds: Readonly<Record<string, readonly string[]>> = {
  'networking.istio.io': ['WorkloadEntry', 'WorkloadGroup', 'EnvoyFilter', 'ProxyConfig'],
  'telemetry.istio.io': ['Telemetry'],
  'extensions.istio.io': ['WasmPlugin', 'TrafficExtension'],
};

/** `networking.istio.io/v1` → `v1`; `v1` → `v1`. */
export function versionOf(apiVersion: string): string {
  return apiVersion.slice(apiVersion.indexOf('/') + 1);
}

export function apiVersionOf(info: KindInfo, version = info.versions[0]): string {
  return info.group ? `${info.group}/${version}` : version;
}

/** Resolves what a user typed (`VirtualService`, `virtualservices`, `vs`, `vs.networking.istio.io`). */
export function lookupKind(name: string): KindInfo | undefined {
  const n = name.toLowerCase();
  const dot = n.indexOf('.');
  const head = dot < 0 ? n : n.slice(0, dot);
  const group = dot < 0 ? undefined : n.slice(dot + 1);
  return kinds.find(
    (k) =>
      (group === undefined || k.group === group) &&
      (k.kind.toLowerCase() === head || k.plural === head || k.shortNames.includes(head)),
  );
}

/** A stored resource as a document to print or apply again: a `topLevel` kind's spec goes back up. */
export function manifestOf(r: Resource): Record<string, unknown> {
  const info = kindFor(r.apiVersion, r.kind);
  if (!info?.topLevel) return r as unknown as Record<string, unknown>;
  return { apiVersion: r.apiVersion, kind: r.kind, metadata: r.metadata, ...(r.spec as object) };
}

/** The kind a document's apiVersion and kind denote, when the version is served. */
export function kindFor(apiVersion: string, kind: string): KindInfo | undefined {
  const slash = apiVersion.indexOf('/');
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  const version = versionOf(apiVersion);
  return kinds.find((k) => k.kind === kind && k.group === group && k.versions.includes(version));
}
