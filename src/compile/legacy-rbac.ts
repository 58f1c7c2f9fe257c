// The legacy RBAC kinds (rbac.istio.io/v1alpha1) as the AuthorizationPolicies they mean, the way
// Istio 1.4's `istioctl x authz convert` read them. Where RBAC is on for a service (ClusterRbacConfig,
// else RbacConfig, named `default`), the service's workloads allow only what a ServiceRoleBinding in
// their namespace grants through its ServiceRole: one ALLOW policy per service (no rules when nothing
// is bound, which denies everything), plus one per narrower selector a `destination.labels[...]`
// constraint asks for. A PERMISSIVE binding or enforcementMode is a dry-run policy: logged, not
// enforced. Pure: the same resources give the same policies, in the same order.
import type { AuthorizationPolicySpec, Condition, Rule, Source } from '../api/kinds/authorization-policy.ts';
import { DRY_RUN_ANNOTATION } from '../api/kinds/authorization-policy.ts';
import type {
  AccessRule,
  RbacConfigSpec,
  ServiceRoleBindingSpec,
  ServiceRoleSpec,
  Subject,
} from '../api/kinds/rbac.ts';
import { RBAC_GROUP } from '../api/kinds/rbac.ts';
import type { Resource } from '../api/resource.ts';

/** What conversion needs of a Service: its names and the labels that select its workloads. */
export interface RbacService {
  fqdn: string;
  name: string;
  namespace: string;
  selector: Record<string, string>;
  /** Service accounts of its workloads, for `destination.user` constraints. */
  serviceAccounts: string[];
}

/** Names where a converted policy came from, on the policy itself. */
export const CONVERTED_FROM_ANNOTATION = 'trellis.dev/converted-from';

const isKind = (r: Resource, kind: string) => r.apiVersion.startsWith(`${RBAC_GROUP}/`) && r.kind === kind;

/** Whether `value` matches a legacy pattern: `*`, `prefix*`, `*suffix` or exact. */
function matches(pattern: string, value: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*')) return value.endsWith(pattern.slice(1));
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  return pattern === value;
}

const servesAs = (patterns: readonly string[], svc: RbacService) =>
  patterns.some((p) => matches(p, svc.fqdn) || matches(p, svc.name));

function rbacConfig(resources: readonly Resource[]): Resource<RbacConfigSpec> | undefined {
  // Istio read ClusterRbacConfig first; RbacConfig was its older name.
  return (resources.find((r) => isKind(r, 'ClusterRbacConfig')) ??
    resources.find((r) => isKind(r, 'RbacConfig'))) as Resource<RbacConfigSpec> | undefined;
}

function inScope(cfg: RbacConfigSpec, svc: RbacService): boolean {
  const listed = (t: RbacConfigSpec['inclusion']) =>
    (t?.namespaces ?? []).includes(svc.namespace) || servesAs(t?.services ?? [], svc);
  switch (cfg.mode) {
    case 'ON':
      return true;
    case 'ON_WITH_INCLUSION':
      return listed(cfg.inclusion);
    case 'ON_WITH_EXCLUSION':
      return !listed(cfg.exclusion);
    default:
      return false;
  }
}

const principal = (p: string) => (p.startsWith('spiffe://') ? p.slice(9) : p);

/** One subject: where it can go in a source, and the conditions only `when` can hold. */
function subjectRule(s: Subject): { source?: Source; when: Condition[] } {
  const source: Source = {};
  const when: Condition[] = [];
  const add = (k: keyof Source, v: string[] | undefined) => {
    if (v?.length) source[k] = [...(source[k] ?? []), ...v];
  };
  if (s.user !== undefined && s.user !== '*') add('principals', [principal(s.user)]);
  add('principals', s.names?.map(principal));
  add('notPrincipals', s.notNames?.map(principal));
  add('namespaces', s.namespaces);
  add('notNamespaces', s.notNamespaces);
  add('ipBlocks', s.ips);
  add('notIpBlocks', s.notIps);
  // Istio 1.0's group was the `groups` claim of the end user's JWT.
  if (s.group !== undefined) when.push({ key: 'request.auth.claims[groups]', values: [s.group] });
  for (const [key, value] of Object.entries(s.properties ?? {})) {
    if (key === 'source.ip') add('ipBlocks', [value]);
    else if (key === 'source.namespace') add('namespaces', [value]);
    else if (key === 'source.principal') add('principals', [principal(value)]);
    else if (key === 'request.auth.principal') add('requestPrincipals', [value]);
    else when.push({ key, values: [value] });
  }
  return Object.keys(source).length ? { source, when } : { when };
}

/**
 * A role's rule for one service: the operation and conditions, and the extra labels its workloads
 * must carry; undefined when a constraint rules the service out.
 */
function accessRule(
  rule: AccessRule,
  svc: RbacService,
): { rule: Omit<Rule, 'from'>; labels: Record<string, string> } | undefined {
  const op: NonNullable<Rule['to']>[number]['operation'] = {};
  if (rule.hosts?.length) op.hosts = rule.hosts;
  if (rule.notHosts?.length) op.notHosts = rule.notHosts;
  if (rule.paths?.length) op.paths = rule.paths;
  if (rule.notPaths?.length) op.notPaths = rule.notPaths;
  if (rule.methods?.length && !rule.methods.includes('*')) op.methods = rule.methods;
  if (rule.notMethods?.length) op.notMethods = rule.notMethods;
  if (rule.ports?.length) op.ports = rule.ports.map(String);
  if (rule.notPorts?.length) op.notPorts = rule.notPorts.map(String);
  const when: Condition[] = [];
  const labels: Record<string, string> = {};
  for (const c of rule.constraints ?? []) {
    const label = /^destination\.labels\[(.+)\]$/.exec(c.key);
    if (label) {
      // One label value per policy selector: with several, the rule splits (see the caller).
      if (c.values.length !== 1 || labels[label[1]] !== undefined) return undefined;
      labels[label[1]] = c.values[0];
    } else if (c.key === 'destination.namespace') {
      if (!c.values.some((v) => matches(v, svc.namespace))) return undefined;
    } else if (c.key === 'destination.user') {
      // Kept only when every workload of the service runs as one of the users: stricter, never wider.
      if (
        !svc.serviceAccounts.length ||
        !svc.serviceAccounts.every((sa) => c.values.some((v) => matches(v, sa)))
      )
        return undefined;
    } else when.push({ key: c.key, values: c.values });
  }
  const out: Omit<Rule, 'from'> = {};
  if (Object.keys(op).length) out.to = [{ operation: op }];
  if (when.length) out.when = when;
  return { rule: out, labels };
}

/** Every AuthorizationPolicy the legacy resources among `resources` stand for. */
export function convertLegacyRbac(
  resources: readonly Resource[],
  services: readonly RbacService[],
): Resource<AuthorizationPolicySpec>[] {
  const cfg = rbacConfig(resources);
  if (!cfg?.spec.mode || cfg.spec.mode === 'OFF') return [];
  const roles = resources.filter((r) => isKind(r, 'ServiceRole')) as Resource<ServiceRoleSpec>[];
  const bindings = (
    resources.filter((r) => isKind(r, 'ServiceRoleBinding')) as Resource<ServiceRoleBindingSpec>[]
  ).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0));
  const configDryRun = cfg.spec.enforcementMode === 'PERMISSIVE';
  const out: Resource<AuthorizationPolicySpec>[] = [];
  const sorted = [...services].sort((a, b) => (a.fqdn < b.fqdn ? -1 : a.fqdn > b.fqdn ? 1 : 0));
  for (const svc of sorted) {
    if (Object.keys(svc.selector).length === 0 || !inScope(cfg.spec, svc)) continue;
    // By selector (the service's, narrowed by destination.labels) and dry run: the rules granted.
    const policies = new Map<
      string,
      { labels: Record<string, string>; dryRun: boolean; rules: Rule[]; from: Set<string> }
    >();
    const policy = (labels: Record<string, string>, dryRun: boolean) => {
      const key = JSON.stringify([Object.entries(labels).sort(), dryRun]);
      let p = policies.get(key);
      if (!p) {
        p = { labels, dryRun, rules: [], from: new Set() };
        policies.set(key, p);
      }
      return p;
    };
    policy({}, configDryRun); // deny by default: the service's own selector, even with nothing bound
    for (const b of bindings) {
      if (b.metadata.namespace !== svc.namespace) continue;
      const role = roles.find(
        (r) => r.metadata.namespace === svc.namespace && r.metadata.name === b.spec.roleRef.name,
      );
      if (!role) continue; // a binding to no role grants nothing
      const dryRun = configDryRun || b.spec.mode === 'PERMISSIVE';
      for (const r of role.spec.rules) {
        if (!servesAs(r.services, svc)) continue;
        const access = accessRule(r, svc);
        if (!access) continue;
        const p = policy(access.labels, dryRun);
        p.from.add(`ServiceRole ${svc.namespace}/${role.metadata.name}`);
        p.from.add(`ServiceRoleBinding ${svc.namespace}/${b.metadata.name}`);
        for (const s of b.spec.subjects) {
          const subject = subjectRule(s);
          const rule: Rule = {
            ...(subject.source ? { from: [{ source: subject.source }] } : {}),
            ...access.rule,
          };
          const when = [...(access.rule.when ?? []), ...subject.when];
          if (when.length) rule.when = when;
          p.rules.push(rule);
        }
      }
    }
    let n = 0;
    for (const p of policies.values()) {
      const annotations: Record<string, string> = {
        [CONVERTED_FROM_ANNOTATION]: [`${cfg.kind} ${cfg.metadata.name}`, ...p.from].join(', '),
      };
      if (p.dryRun) annotations[DRY_RUN_ANNOTATION] = 'true';
      out.push({
        apiVersion: 'security.istio.io/v1',
        kind: 'AuthorizationPolicy',
        metadata: {
          name: `legacy-rbac-${svc.name}${n++ ? `-${n - 1}` : ''}`,
          namespace: svc.namespace,
          annotations,
          ...(cfg.metadata.creationTimestamp ? { creationTimestamp: cfg.metadata.creationTimestamp } : {}),
        },
        spec: {
          selector: { matchLabels: { ...svc.selector, ...p.labels } },
          action: 'ALLOW',
          rules: p.rules,
        },
      });
    }
  }
  return out;
}
