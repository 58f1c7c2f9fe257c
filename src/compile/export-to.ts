// Who sees a resource: `exportTo` as Istio reads it, one rule for every kind that has it. A Service
// (its `networking.istio.io/exportTo` annotation) or ServiceEntry not exported to a proxy's namespace
// is not in that proxy's registry; a VirtualService not exported to it does not route its requests; a
// DestinationRule not exported to it is skipped by the lookup, which goes client namespace, then the
// service's namespace, then the root namespace, as Istio's does.
import type { DestinationRuleSpec, ServiceEntrySpec, VirtualServiceSpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import type { MeshIndex, MeshService } from './mesh-index.ts';

/**
 * Is something defined in `owner` visible in `namespace`? `.` is the owner's namespace, `*` every one,
 * `~` none, anything else a namespace name; `defaults` stand in for a missing or empty list.
 */
export function exportedTo(
  exportTo: readonly string[] | undefined,
  owner: string,
  namespace: string,
  defaults: readonly string[],
): boolean {
  const to = exportTo && exportTo.length > 0 ? exportTo : defaults;
  return to.some((x) => x === '*' || x === namespace || (x === '.' && owner === namespace));
}

export function serviceVisible(index: MeshIndex, svc: MeshService, namespace: string): boolean {
  return exportedTo(svc.exportTo, svc.namespace, namespace, index.meshConfig.defaultExportTo.service);
}

/** A ServiceEntry without exportTo takes `defaultServiceExportTo`, as Istio's do. */
export function entryVisible(
  index: MeshIndex,
  entry: Resource<ServiceEntrySpec>,
  namespace: string,
): boolean {
  const defaults = index.meshConfig.defaultExportTo.service;
  return exportedTo(entry.spec.exportTo, entry.metadata.namespace, namespace, defaults);
}

export function virtualServiceVisible(
  index: MeshIndex,
  vs: Resource<VirtualServiceSpec>,
  namespace: string,
): boolean {
  const defaults = index.meshConfig.defaultExportTo.virtualService;
  return exportedTo(vs.spec.exportTo, vs.metadata.namespace, namespace, defaults);
}

function ruleVisible(index: MeshIndex, dr: Resource<DestinationRuleSpec>, namespace: string): boolean {
  const defaults = index.meshConfig.defaultExportTo.destinationRule;
  return exportedTo(dr.spec.exportTo, dr.metadata.namespace, namespace, defaults);
}

const merged = new WeakMap<MeshIndex, Map<string, Resource<DestinationRuleSpec>>>();

/**
 * The DestinationRule a proxy in `client` uses for `host`, whose service lives in `serviceNamespace`
 * (undefined for a host the registry does not know): the rules of the first namespace on the lookup
 * path that exports one to the client, merged as Istio merges several rules for one host.
 */
export function destinationRuleFor(
  index: MeshIndex,
  host: string,
  serviceNamespace: string | undefined,
  client: string,
): Resource<DestinationRuleSpec> | undefined {
  const rules = index.destinationRules.get(host);
  if (!rules) return undefined;
  for (const ns of [client, serviceNamespace, index.meshConfig.rootNamespace]) {
    if (ns === undefined) continue;
    const found = rules.filter((r) => r.metadata.namespace === ns && ruleVisible(index, r, client));
    if (found.length === 0) continue;
    if (found.length === 1) return found[0];
    let memo = merged.get(index);
    if (!memo) {
      memo = new Map();
      merged.set(index, memo);
    }
    const key = found.map((r) => `${r.metadata.namespace}/${r.metadata.name}`).join(',');
    let dr = memo.get(key);
    if (!dr) {
      dr = found.reduce(mergeDestinationRules);
      memo.set(key, dr);
    }
    return dr;
  }
  return undefined;
}

/**
 * Several rules for one host merge oldest first: the first top-level traffic policy wins, and
 * subsets are added unless an older rule already has one of that name.
 */
function mergeDestinationRules(
  older: Resource<DestinationRuleSpec>,
  newer: Resource<DestinationRuleSpec>,
): Resource<DestinationRuleSpec> {
  const names = new Set((older.spec.subsets ?? []).map((s) => s.name));
  const subsets = [
    ...(older.spec.subsets ?? []),
    ...(newer.spec.subsets ?? []).filter((s) => !names.has(s.name)),
  ];
  const trafficPolicy = older.spec.trafficPolicy ?? newer.spec.trafficPolicy;
  return {
    ...older,
    spec: { ...older.spec, ...(trafficPolicy ? { trafficPolicy } : {}), subsets },
  };
}
