// VirtualService → routes: each HTTP rule's matches (with the source-scoped fields settled for the
// proxy being compiled) and its action (forward to weighted clusters, redirect, direct response).
import type { HTTPRoute, StringMatch as StringMatchSpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { parseDuration } from '../api/schema.ts';
import type { ClusterSet } from './clusters.ts';
import { virtualServiceVisible } from './export-to.ts';
import { resolveHost } from './hosts.ts';
import { labelsMatch, type MeshIndex, type VirtualServiceSpec } from './mesh-index.ts';
import { corsPolicy, faultPolicy, headerEdits, retryPolicy } from './route-policy.ts';
import { entryPorts } from './service-entries.ts';
import type {
  HeaderMatch,
  MirrorPolicy,
  PathRewrite,
  ProxyNode,
  Route,
  RouteAction,
  RouteMatch,
  StringMatch,
} from './snapshot.ts';

function stringMatch(m: StringMatchSpec): StringMatch {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.regex !== undefined) return { regex: m.regex };
  return {}; // `{}`: present with any value
}

const CLAIM_PREFIX = '@request.auth.claims';

/** `@request.auth.claims.a.b` or `@request.auth.claims[a][b]` → `['a', 'b']` (validated at apply). */
function claimPath(key: string): string[] {
  const rest = key.slice(CLAIM_PREFIX.length);
  return rest.startsWith('[') ? rest.slice(1, -1).split('][') : rest.slice(1).split('.');
}

function headerMatches(map: Record<string, StringMatchSpec> | undefined): HeaderMatch[] {
  return (
    Object.entries(map ?? {})
      // Istio ignores these pseudo-header keys in `headers`: they have their own match fields.
      .filter(([k]) => !['uri', 'scheme', 'method', 'authority'].includes(k.toLowerCase()))
      .map(([k, v]) =>
        k.startsWith(CLAIM_PREFIX)
          ? { name: k, match: stringMatch(v), claim: claimPath(k) }
          : { name: k.toLowerCase(), match: stringMatch(v) },
      )
  );
}

/** Who a route is being compiled for: the source-scoped match fields are settled here. */
export interface RouteScope {
  node: ProxyNode;
  /** `ns/name` of the Gateway whose listener this is; undefined for the sidecar (`mesh`). */
  gateway?: string;
  /** The port requests on this virtual host were addressed to, when known. */
  port?: number;
}

function matchGatewayApplies(gateways: string[], vsNamespace: string, scope: RouteScope): boolean {
  if (!scope.gateway) return gateways.includes('mesh');
  return gateways.some((g) => (g.includes('/') ? g : `${vsNamespace}/${g}`) === scope.gateway);
}

/**
 * The runtime matches of a rule, or undefined when every match block is out of scope for this proxy:
 * such a rule must not become a catch-all, it simply does not exist here.
 */
function routeMatches(rule: HTTPRoute, vsNamespace: string, scope: RouteScope): RouteMatch[] | undefined {
  if (!rule.match || rule.match.length === 0) return [];
  const out: RouteMatch[] = [];
  for (const m of rule.match) {
    if (m.gateways && !matchGatewayApplies(m.gateways, vsNamespace, scope)) continue;
    if (m.sourceLabels && !labelsMatch(m.sourceLabels, scope.node.labels)) continue;
    if (m.sourceNamespace && m.sourceNamespace !== scope.node.namespace) continue;
    if (m.port !== undefined && scope.port !== undefined && m.port !== scope.port) continue;
    const rm: RouteMatch = {};
    if (m.uri) rm.uri = stringMatch(m.uri);
    if (m.ignoreUriCase) rm.ignoreUriCase = true;
    if (m.scheme) rm.scheme = stringMatch(m.scheme);
    if (m.method) rm.method = stringMatch(m.method);
    if (m.authority) rm.authority = stringMatch(m.authority);
    const headers = headerMatches(m.headers);
    if (headers.length) rm.headers = headers;
    const without = headerMatches(m.withoutHeaders);
    if (without.length) rm.withoutHeaders = without;
    const query = Object.entries(m.queryParams ?? {}).map(([k, v]) => ({ name: k, match: stringMatch(v) }));
    if (query.length) rm.queryParams = query;
    if (m.port !== undefined && scope.port === undefined) rm.port = m.port;
    out.push(rm);
  }
  return out.length ? out : undefined;
}

/**
 * Routes for one VirtualService as seen by one proxy on one port. A destination without a port goes
 * to the service's only port, or to the port the request was addressed to. A `delegate` rule is
 * replaced by the delegate VirtualService's rules, their matches merged with the root's (Istio's
 * delegation: one level, the delegate's match narrowing the root's).
 */
export function vsRoutes(
  vs: Resource<VirtualServiceSpec>,
  clusters: ClusterSet,
  index: MeshIndex,
  scope: RouteScope,
): Route[] {
  const ns = vs.metadata.namespace;
  const routes: Route[] = [];
  (vs.spec.http ?? []).forEach((rule, i) => {
    const matches = routeMatches(rule, ns, scope);
    if (!matches) return;
    const name = `${ns}/${vs.metadata.name}${rule.name ? `.${rule.name}` : ''}#${i}`;
    const origin = `VirtualService ${ns}/${vs.metadata.name} http[${i}]`;
    if (rule.delegate) {
      routes.push(...delegatedRoutes(rule, matches, origin, clusters, index, scope, ns));
      return;
    }
    routes.push(...ruleRoutes(rule, matches, name, origin, ns, clusters, index, scope.port));
  });
  return routes;
}

/**
 * One route per rule; a rule that rewrites its matched uri prefix gets one route per match, as pilot
 * builds them, since each match says which prefix is replaced.
 */
function ruleRoutes(
  rule: HTTPRoute,
  matches: RouteMatch[],
  name: string,
  origin: string,
  ns: string,
  clusters: ClusterSet,
  index: MeshIndex,
  listenPort: number | undefined,
): Route[] {
  const action = routeAction(rule, ns, clusters, index, listenPort, origin);
  const prefixed =
    (action.type === 'forward' && action.rewrite?.uri !== undefined) || action.type === 'redirect';
  if (!prefixed || matches.length <= 1)
    return [{ name, origin, matches, action: settlePrefix(action, matches[0]) }];
  return matches.map((m) => ({ name, origin, matches: [m], action: settlePrefix(action, m) }));
}

/** The matched uri prefix a path rewrite replaces; with no prefix match the whole path is replaced. */
function settlePrefix(action: RouteAction, m: RouteMatch | undefined): RouteAction {
  const prefix = m?.uri?.prefix ?? (m?.uri ? undefined : '/');
  if (action.type === 'forward' && action.rewrite?.uri !== undefined) {
    const rewrite = { ...action.rewrite };
    if (prefix !== undefined) rewrite.prefix = prefix;
    if (m?.ignoreUriCase) rewrite.ignoreCase = true;
    return { ...action, rewrite };
  }
  if (action.type === 'redirect' && action.prefixRewrite) {
    return {
      ...action,
      prefixRewrite: {
        prefix: prefix ?? '',
        replacement: action.prefixRewrite.replacement,
        ...(m?.ignoreUriCase ? { ignoreCase: true } : {}),
      },
    };
  }
  return action;
}

function delegatedRoutes(
  root: HTTPRoute,
  rootMatches: RouteMatch[],
  origin: string,
  clusters: ClusterSet,
  index: MeshIndex,
  scope: RouteScope,
  rootNs: string,
): Route[] {
  const ref = root.delegate!;
  const dns = ref.namespace ?? rootNs;
  const delegate = index.virtualServices.find(
    (v) => v.metadata.name === ref.name && v.metadata.namespace === dns && !v.spec.hosts?.length,
  );
  // As in Istio, a delegate must be exported to the root's namespace.
  const hidden = delegate !== undefined && !virtualServiceVisible(index, delegate, rootNs);
  if (!delegate || hidden) {
    // Istio drops the rule; answering makes the missing delegate visible instead of a silent 404.
    return [
      {
        name: `${rootNs}#delegate-missing`,
        origin,
        matches: rootMatches,
        action: {
          type: 'direct',
          status: 500,
          body: hidden
            ? `${origin} delegates to VirtualService ${dns}/${ref.name}, which is not exported to namespace ${rootNs}\n`
            : `${origin} delegates to VirtualService ${dns}/${ref.name}, which does not exist or has hosts\n`,
        },
      },
    ];
  }
  const routes: Route[] = [];
  (delegate.spec.http ?? []).forEach((rule, i) => {
    const own = routeMatches(rule, dns, scope);
    if (!own) return;
    const merged = mergeMatches(rootMatches, own);
    // Every match conflicts with the root's: Istio drops the rule (no matches on both sides is a catch-all).
    if (merged.length === 0 && rootMatches.length > 0 && own.length > 0) return;
    const name = `${dns}/${delegate.metadata.name}${rule.name ? `.${rule.name}` : ''}#${i}`;
    const dOrigin = `VirtualService ${dns}/${delegate.metadata.name} http[${i}] (delegated by ${origin})`;
    routes.push(...ruleRoutes(inherit(root, rule), merged, name, dOrigin, dns, clusters, index, scope.port));
  });
  return routes;
}

/** The delegate's own settings win; what it leaves out comes from the root rule (Istio's mergeHTTPRoute). */
function inherit(root: HTTPRoute, d: HTTPRoute): HTTPRoute {
  const out: HTTPRoute = { ...d };
  for (const k of [
    'rewrite',
    'timeout',
    'retries',
    'fault',
    'mirror',
    'mirrors',
    'mirrorPercentage',
    'corsPolicy',
    'headers',
  ] as const) {
    if (out[k] === undefined && root[k] !== undefined) (out as Record<string, unknown>)[k] = root[k];
  }
  return out;
}

/**
 * Every root match ANDed with every delegate match. A pair is dropped when the delegate's condition
 * cannot narrow the root's (a uri outside the root's prefix, a header with another value).
 */
function mergeMatches(root: RouteMatch[], own: RouteMatch[]): RouteMatch[] {
  if (root.length === 0) return own;
  if (own.length === 0) return root;
  const out: RouteMatch[] = [];
  for (const r of root)
    for (const o of own) {
      const m = mergeMatch(r, o);
      if (m) out.push(m);
    }
  return out;
}

function mergeMatch(r: RouteMatch, o: RouteMatch): RouteMatch | undefined {
  const m: RouteMatch = { ...r, ...o };
  if (r.uri && o.uri) {
    const ru = r.uri;
    const ou = o.uri;
    const within =
      ru.prefix !== undefined
        ? (ou.prefix ?? ou.exact)?.startsWith(ru.prefix) === true
        : ru.exact !== undefined
          ? ou.exact === ru.exact
          : ru.regex === ou.regex;
    if (!within) return undefined;
  }
  for (const k of ['scheme', 'method', 'authority'] as const) {
    if (r[k] && o[k] && JSON.stringify(r[k]) !== JSON.stringify(o[k])) return undefined;
  }
  if (r.port !== undefined && o.port !== undefined && r.port !== o.port) return undefined;
  const union = (a?: HeaderMatch[], b?: HeaderMatch[]): HeaderMatch[] | undefined | false => {
    if (!a) return b;
    if (!b) return a;
    const byName = new Map(a.map((h) => [h.name, h]));
    for (const h of b) {
      const prior = byName.get(h.name);
      if (prior && JSON.stringify(prior.match) !== JSON.stringify(h.match)) return false;
      byName.set(h.name, h);
    }
    return [...byName.values()];
  };
  for (const k of ['headers', 'withoutHeaders', 'queryParams'] as const) {
    const u = union(r[k], o[k]);
    if (u === false) return undefined;
    if (u) m[k] = u;
  }
  return m;
}

/** A route destination's cluster; without a port, the service's only port or the one addressed. */
export function destinationOf(
  d: { host: string; subset?: string; port?: { number?: number } },
  ns: string,
  clusters: ClusterSet,
  index: MeshIndex,
  listenPort: number | undefined,
): string {
  const fqdn = resolveHost(d.host, ns);
  const svc = index.services.get(fqdn);
  const ports = svc ? svc.ports.map((p) => p.port) : entryPorts(index, fqdn);
  const port = d.port?.number ?? (ports.length === 1 ? ports[0] : (listenPort ?? ports[0] ?? 80));
  return clusters.outbound(fqdn, port, d.subset);
}

function routeAction(
  rule: HTTPRoute,
  ns: string,
  clusters: ClusterSet,
  index: MeshIndex,
  listenPort: number | undefined,
  origin: string,
): RouteAction {
  if (rule.directResponse) {
    const body = rule.directResponse.body?.string ?? decodeBase64(rule.directResponse.body?.bytes);
    return { type: 'direct', status: rule.directResponse.status, body };
  }
  if (rule.redirect) {
    const r = rule.redirect;
    return {
      type: 'redirect',
      status: r.redirectCode ?? 301,
      ...(r.uri !== undefined ? { uri: r.uri } : {}),
      ...(r.prefixRewrite !== undefined
        ? { prefixRewrite: { prefix: '', replacement: r.prefixRewrite } }
        : {}),
      ...(r.authority !== undefined ? { authority: r.authority } : {}),
      ...(r.scheme !== undefined ? { scheme: r.scheme } : {}),
      ...(r.port !== undefined
        ? { port: r.port }
        : r.derivePort === 'FROM_PROTOCOL_DEFAULT'
          ? { port: 'protocol-default' as const }
          : {}),
    };
  }
  const dests = rule.route ?? [];
  const weighted = dests.map((d) => {
    // One destination takes all traffic whatever its weight; otherwise weights are relative.
    const weight = dests.length === 1 ? 100 : (d.weight ?? 0);
    const headers = headerEdits(d.headers);
    return {
      cluster: destinationOf(d.destination, ns, clusters, index, listenPort),
      weight,
      ...(headers ? { headers } : {}),
    };
  });
  const timeoutMs = rule.timeout ? parseDuration(rule.timeout) : undefined;
  const retry = retryPolicy(rule.retries, origin, timeoutMs, index.meshConfig.defaultHttpRetryPolicy);
  const fault = faultPolicy(rule.fault);
  const headers = headerEdits(rule.headers);
  const cors = corsPolicy(rule.corsPolicy);
  const rw = rule.rewrite;
  const rewrite: PathRewrite | undefined = rw
    ? {
        ...(rw.uri !== undefined ? { uri: rw.uri } : {}),
        ...(rw.uriRegexRewrite ? { regex: { ...rw.uriRegexRewrite } } : {}),
        ...(rw.authority ? { authority: rw.authority } : {}),
      }
    : undefined;
  const mirrors: MirrorPolicy[] = (
    rule.mirrors ??
    (rule.mirror
      ? [
          {
            destination: rule.mirror,
            percentage:
              rule.mirrorPercentage ??
              (rule.mirrorPercent !== undefined ? { value: rule.mirrorPercent } : undefined),
          },
        ]
      : [])
  ).map((m) => ({
    cluster: destinationOf(m.destination, ns, clusters, index, listenPort),
    percent: m.percentage?.value ?? 100,
  }));
  return {
    type: 'forward',
    clusters: weighted.filter((w) => w.weight > 0),
    ...(timeoutMs ? { timeoutMs } : {}),
    ...(retry ? { retry } : {}),
    ...(fault ? { fault } : {}),
    ...(rewrite ? { rewrite } : {}),
    ...(headers ? { headers } : {}),
    ...(mirrors.length ? { mirrors } : {}),
    ...(cors ? { cors } : {}),
  };
}

function decodeBase64(b?: string): string | undefined {
  if (b === undefined) return undefined;
  return new TextDecoder().decode(Uint8Array.from(atob(b), (c) => c.charCodeAt(0)));
}

/**
 * A service port's only route when no VirtualService claims its host: all traffic to the service.
 * `owner` is the Service or ServiceEntry that defines the host, as `Kind ns/name`.
 */
export function defaultRoute(
  index: MeshIndex,
  clusters: ClusterSet,
  fqdn: string,
  port: number,
  owner: string,
): Route {
  const retry = retryPolicy(undefined, '', undefined, index.meshConfig.defaultHttpRetryPolicy);
  return {
    name: 'default',
    origin: `${owner} (no VirtualService)`,
    matches: [],
    action: {
      type: 'forward',
      clusters: [{ cluster: clusters.outbound(fqdn, port, undefined), weight: 100 }],
      ...(retry ? { retry } : {}),
    },
  };
}
