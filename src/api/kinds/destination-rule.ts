// DestinationRule: subsets of a service and the policies applied to traffic once it is routed there.
import { array, type Ctx, fail, isObject, join, object, type Validator } from '../schema.ts';
import {
  dns1123Label,
  eachString,
  exportTo,
  host,
  labels,
  type WorkloadSelector,
  workloadSelector,
} from './common.ts';
import { type TrafficPolicy, trafficPolicy } from './traffic-policy.ts';
import type { KindInfo } from './types.ts';

export type * from './traffic-policy.ts';

export interface Subset {
  name: string;
  /** Selects the service's endpoints that belong to the subset (ANDed with the service selector). */
  labels?: Record<string, string>;
  /** Applies only when a route targets this subset explicitly; overrides the top-level policy. */
  trafficPolicy?: TrafficPolicy;
}

export interface DestinationRuleSpec {
  host: string;
  trafficPolicy?: TrafficPolicy;
  subsets?: Subset[];
  exportTo?: string[];
  workloadSelector?: WorkloadSelector;
}

const subset: Validator = object(
  { name: dns1123Label('subset name'), labels: labels(), trafficPolicy },
  { required: ['name'] },
);

function checkDestinationRule(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const seen = new Map<string, number>();
  (Array.isArray(v.subsets) ? v.subsets : []).forEach((s, i) => {
    if (!isObject(s) || typeof s.name !== 'string') return;
    const first = seen.get(s.name);
    if (first !== undefined) {
      fail(
        ctx,
        join(join(join(path, 'subsets'), i), 'name'),
        `duplicate subset name "${s.name}" (also subsets[${first}])`,
      );
    } else seen.set(s.name, i);
  });
  if (v.workloadSelector != null && eachString(v.exportTo).some((e) => e !== '.')) {
    fail(
      ctx,
      join(path, 'exportTo'),
      'a destination rule with a workloadSelector can only be exported to its own namespace: use exportTo ["."]',
    );
  }
}

export const destinationRuleSpec: Validator = object(
  {
    host: host({ allowStar: true, what: 'host' }),
    trafficPolicy,
    subsets: array(subset),
    exportTo: exportTo(),
    workloadSelector: workloadSelector(),
  },
  {
    required: ['host'],
    notEnforced: ['workloadSelector'],
    check: checkDestinationRule,
  },
);

export const destinationRule: KindInfo = {
  group: 'networking.istio.io',
  kind: 'DestinationRule',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  plural: 'destinationrules',
  shortNames: ['dr'],
  spec: destinationRuleSpec,
};
