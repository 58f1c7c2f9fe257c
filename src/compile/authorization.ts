// AuthorizationPolicy → the policies that apply to one proxy, per action, with every value already in
// the form the proxy compares: principals with the trust domain and its aliases expanded, service
// accounts qualified by namespace, ports as numbers, hosts lower-cased, addresses as CIDR blocks.
// Which policies apply follows Istio: `targetRefs` (Gateway, Service), else `selector` within the
// policy's namespace, else the whole namespace; policies in the root namespace apply mesh-wide.
import {
  type AuthorizationAction,
  type AuthorizationPolicySpec,
  type Condition,
  DRY_RUN_ANNOTATION,
  type Operation,
  type Rule,
  type Source,
  targetKind,
} from '../api/kinds/authorization-policy.ts';
import type { Resource } from '../api/resource.ts';
import { resolveExtAuthz } from './ext-authz.ts';
import { serviceFqdn } from './hosts.ts';
import { labelsMatch, type MeshIndex } from './mesh-index.ts';
import type {
  Authorization,
  AuthorizationCondition,
  AuthorizationOperation,
  AuthorizationPolicyRules,
  AuthorizationRule,
  AuthorizationSource,
  ProxyNode,
} from './snapshot.ts';

const SECTION: Record<AuthorizationAction, Exclude<keyof Authorization, 'extAuthz'>> = {
  CUSTOM: 'custom',
  DENY: 'deny',
  ALLOW: 'allow',
  AUDIT: 'audit',
};

/** Istio's default trust domain: in a policy it stands for the mesh's own, whatever that is. */
const DEFAULT_TRUST_DOMAIN = 'cluster.local';

interface Scope {
  /** The policy's namespace: a bare service account is in it. */
  namespace: string;
  /** The mesh's trust domain first, then its aliases. */
  trustDomains: readonly string[];
}

function applies(
  index: MeshIndex,
  p: Resource<AuthorizationPolicySpec>,
  node: ProxyNode,
  gateways: readonly string[],
): boolean {
  const ns = p.metadata.namespace;
  const refs = p.spec.targetRefs ?? (p.spec.targetRef ? [p.spec.targetRef] : undefined);
  if (refs && refs.length > 0) {
    return refs.some((ref) => {
      const kind = targetKind(ref);
      if (kind === 'Gateway') return node.role === 'gateway' && gateways.includes(`${ns}/${ref.name}`);
      if (kind === 'Service') {
        const svc = index.services.get(serviceFqdn(ref.name, ns));
        return node.role === 'sidecar' && (svc?.instances.some((i) => i.node.id === node.id) ?? false);
      }
      return false; // warned at apply: the policy applies to nothing
    });
  }
  if (ns !== node.namespace && ns !== index.meshConfig.rootNamespace) return false;
  const labels = p.spec.selector?.matchLabels;
  return !labels || Object.keys(labels).length === 0 || labelsMatch(labels, node.labels);
}

/**
 * The policies for a sidecar, or for the gateway listener made of the servers of `gateways`
 * (`ns/name`); undefined when none applies.
 */
export function authorizationFor(
  index: MeshIndex,
  node: ProxyNode,
  gateways: readonly string[] = [],
): Authorization | undefined {
  const trustDomains = [index.mesh.trustDomain, ...index.meshConfig.trustDomainAliases];
  const by: Required<Omit<Authorization, 'extAuthz'>> = { custom: [], deny: [], allow: [], audit: [] };
  for (const p of index.authorizationPolicies) {
    if (!applies(index, p, node, gateways)) continue;
    const scope: Scope = { namespace: p.metadata.namespace, trustDomains };
    const entry: AuthorizationPolicyRules = {
      name: `${p.metadata.namespace}/${p.metadata.name}`,
      rules: (p.spec.rules ?? []).map((r) => rule(r, scope)),
    };
    // Istio's dry run covers ALLOW and DENY only: a CUSTOM policy is enforced whatever it says.
    if (p.metadata.annotations?.[DRY_RUN_ANNOTATION] === 'true' && p.spec.action !== 'CUSTOM')
      entry.dryRun = true;
    if (p.spec.provider) entry.provider = p.spec.provider.name;
    by[SECTION[p.spec.action ?? 'ALLOW']].push(entry);
  }
  // In evaluation order, so the snapshot reads the way the proxy decides.
  const out: Authorization = {};
  for (const key of ['custom', 'deny', 'allow', 'audit'] as const) {
    if (by[key].length) out[key] = by[key];
    if (key === 'custom' && by.custom.length) out.extAuthz = resolveExtAuthz(index, by.custom);
  }
  return Object.keys(out).length ? out : undefined;
}

function rule(r: Rule, scope: Scope): AuthorizationRule {
  const out: AuthorizationRule = {};
  if (r.from?.length) out.from = r.from.map((f) => source(f.source, scope));
  if (r.to?.length) out.to = r.to.map((t) => operation(t.operation));
  if (r.when?.length) out.when = r.when.map((c) => condition(c, scope));
  return out;
}

/** Sets `key` only to a non-empty list, so the snapshot shows what the policy says and nothing more. */
function put<T, K extends keyof T>(out: T, key: K, list: (T[K] & unknown[]) | undefined): void {
  if (list && list.length > 0) out[key] = list;
}

function source(s: Source, scope: Scope): AuthorizationSource {
  const out: AuthorizationSource = {};
  put(out, 'principals', s.principals && principals(s.principals, scope));
  put(out, 'notPrincipals', s.notPrincipals && principals(s.notPrincipals, scope));
  put(out, 'requestPrincipals', s.requestPrincipals);
  put(out, 'notRequestPrincipals', s.notRequestPrincipals);
  put(out, 'namespaces', s.namespaces);
  put(out, 'notNamespaces', s.notNamespaces);
  put(
    out,
    'serviceAccounts',
    s.serviceAccounts?.map((sa) => serviceAccount(sa, scope)),
  );
  put(
    out,
    'notServiceAccounts',
    s.notServiceAccounts?.map((sa) => serviceAccount(sa, scope)),
  );
  put(out, 'trustDomains', s.trustDomains);
  put(out, 'notTrustDomains', s.notTrustDomains);
  put(out, 'ipBlocks', s.ipBlocks?.map(cidr));
  put(out, 'notIpBlocks', s.notIpBlocks?.map(cidr));
  put(out, 'remoteIpBlocks', s.remoteIpBlocks?.map(cidr));
  put(out, 'notRemoteIpBlocks', s.notRemoteIpBlocks?.map(cidr));
  return out;
}

function operation(o: Operation): AuthorizationOperation {
  const out: AuthorizationOperation = {};
  put(
    out,
    'hosts',
    o.hosts?.map((h) => h.toLowerCase()),
  );
  put(
    out,
    'notHosts',
    o.notHosts?.map((h) => h.toLowerCase()),
  );
  put(out, 'ports', o.ports?.map(Number));
  put(out, 'notPorts', o.notPorts?.map(Number));
  put(out, 'methods', o.methods);
  put(out, 'notMethods', o.notMethods);
  put(out, 'paths', o.paths);
  put(out, 'notPaths', o.notPaths);
  return out;
}

const IP_KEYS = new Set(['source.ip', 'remote.ip', 'destination.ip']);

function condition(c: Condition, scope: Scope): AuthorizationCondition {
  const header = /^request\.headers\[(.+)\]$/.exec(c.key);
  const key = header ? `request.headers[${header[1].toLowerCase()}]` : c.key;
  const norm = (vs: string[]): string[] => {
    if (IP_KEYS.has(key)) return vs.map(cidr);
    if (key === 'source.principal') return principals(vs, scope);
    if (key === 'destination.port') return vs.map((v) => String(Number(v)));
    return vs;
  };
  const out: AuthorizationCondition = { key };
  put(out, 'values', c.values && norm(c.values));
  put(out, 'notValues', c.notValues && norm(c.notValues));
  return out;
}

/**
 * Istio's trust domain handling: a principal in the mesh's trust domain, one of its aliases, or
 * `cluster.local` matches in every one of them; one starting with `*` does not care about the trust
 * domain and stays as written (so `*\/ns/foo/sa/bar` is a suffix match, CVE-2020-16844).
 */
export function principals(values: readonly string[], scope: Pick<Scope, 'trustDomains'>): string[] {
  const out = new Set<string>();
  for (const v of values) {
    const slash = v.indexOf('/');
    const td = slash < 0 ? undefined : v.slice(0, slash);
    if (
      v.startsWith('*') ||
      td === undefined ||
      !(scope.trustDomains.includes(td) || td === DEFAULT_TRUST_DOMAIN)
    ) {
      out.add(v);
      continue;
    }
    for (const d of scope.trustDomains) out.add(d + v.slice(slash));
  }
  return [...out];
}

/** `sa` is in the policy's namespace. */
function serviceAccount(sa: string, scope: Scope): string {
  return sa.includes('/') ? sa : `${scope.namespace}/${sa}`;
}

function cidr(v: string): string {
  if (v.includes('/')) return v;
  return v.includes(':') ? `${v}/128` : `${v}/32`;
}
