// VirtualService → routes: each HTTP rule's matches (with the source-scoped fields settled for the
// proxy being compiled) and its action (forward to weighted clusters, redirect, direct response).
import type { HTTPRoute, StringMatch as StringMatchSpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { parseDuration } from '../api/schema.ts';
import type { ClusterSet } from './clusters.ts';
import { resolveHost } from './hosts.ts';
import { labelsMatch, type MeshIndex, type MeshService, type VirtualServiceSpec } from './mesh-index.ts';
import type { HeaderMatch, ProxyNode, Route, RouteAction, RouteMatch, StringMatch } from './snapshot.ts';

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
 * to the service's only port, or to the port the request was addressed to.
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
    routes.push({
      name,
      origin,
      matches,
      action: routeAction(rule, ns, clusters, index, scope.port, origin),
    });
  });
  return routes;
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
  if (dests.length === 0) {
    // Only a delegate can leave a rule without an action; delegation is not served yet (warned at apply).
    return {
      type: 'direct',
      status: 500,
      body: `${origin} delegates to another VirtualService, which Trellis does not serve yet\n`,
    };
  }
  const weighted = dests.map((d) => {
    const fqdn = resolveHost(d.destination.host, ns);
    const svc = index.services.get(fqdn);
    const port =
      d.destination.port?.number ??
      (svc?.ports.length === 1 ? svc.ports[0].port : (listenPort ?? svc?.ports[0]?.port ?? 80));
    // One destination takes all traffic whatever its weight; otherwise weights are relative.
    const weight = dests.length === 1 ? 100 : (d.weight ?? 0);
    return { cluster: clusters.outbound(fqdn, port, d.destination.subset), weight };
  });
  const timeoutMs = rule.timeout ? parseDuration(rule.timeout) : undefined;
  return {
    type: 'forward',
    clusters: weighted.filter((w) => w.weight > 0),
    ...(timeoutMs ? { timeoutMs } : {}),
  };
}

function decodeBase64(b?: string): string | undefined {
  if (b === undefined) return undefined;
  return new TextDecoder().decode(Uint8Array.from(atob(b), (c) => c.charCodeAt(0)));
}

/** A service port's only route when no VirtualService claims its host: all traffic to the service. */
export function defaultRoute(clusters: ClusterSet, svc: MeshService, port: number): Route {
  return {
    name: 'default',
    origin: `Service ${svc.namespace}/${svc.name} (no VirtualService)`,
    matches: [],
    action: {
      type: 'forward',
      clusters: [{ cluster: clusters.outbound(svc.fqdn, port, undefined), weight: 100 }],
    },
  };
}
