// VirtualService: how requests for a set of hosts are routed (networking.istio.io).
import {
  all,
  array,
  type Ctx,
  fail,
  isObject,
  join,
  object,
  string,
  type Validator,
  warn,
} from '../schema.ts';
import {
  type Destination,
  destination,
  eachString,
  exportTo,
  gatewayRef,
  host,
  int32,
  ipOrCidr,
  labels,
  NOT_ENFORCED,
  portNumber,
  weightedDestinations,
} from './common.ts';
import { type HTTPRoute, httpRoute } from './http-route.ts';
import { hostCovers, isDns1123Label } from './syntax.ts';
import type { KindInfo } from './types.ts';

export type {
  CorsPolicy,
  Delegate,
  FaultAbort,
  FaultDelay,
  HTTPBody,
  HTTPDirectResponse,
  HTTPFaultInjection,
  HTTPMatchRequest,
  HTTPMirrorPolicy,
  HTTPRedirect,
  HTTPRetry,
  HTTPRewrite,
  HTTPRoute,
  HTTPRouteDestination,
  RegexRewrite,
} from './http-route.ts';

export interface RouteDestination {
  destination: Destination;
  weight?: number;
}

export interface TLSMatchAttributes {
  sniHosts: string[];
  destinationSubnets?: string[];
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  sourceNamespace?: string;
}

export interface TLSRoute {
  match: TLSMatchAttributes[];
  route: RouteDestination[];
}

export interface L4MatchAttributes {
  destinationSubnets?: string[];
  port?: number;
  sourceLabels?: Record<string, string>;
  gateways?: string[];
  sourceNamespace?: string;
  sourceSubnet?: string;
}

export interface TCPRoute {
  match?: L4MatchAttributes[];
  route: RouteDestination[];
}

export interface VirtualServiceSpec {
  /** Absent for a delegate VirtualService. */
  hosts?: string[];
  /** Defaults to `mesh`. */
  gateways?: string[];
  /** Ordered: the first matching rule wins. */
  http?: HTTPRoute[];
  tls?: TLSRoute[];
  tcp?: TCPRoute[];
  exportTo?: string[];
}

const namespaceName: Validator = string({
  check: (v, path, ctx) => {
    if (!isDns1123Label(v))
      fail(ctx, path, `sourceNamespace match ${v} is invalid: expected a namespace name`);
  },
});

const routeDestination: Validator = object(
  { destination: destination(), weight: int32() },
  { required: ['destination'] },
);

function requireList(field: string, message: string): Validator {
  return (v, path, ctx) => {
    if (!isObject(v)) return;
    const list = v[field];
    if (list === undefined || list === null || (Array.isArray(list) && list.length === 0)) {
      fail(ctx, join(path, field), message);
    }
  };
}

const tlsMatch: Validator = all(
  object({
    sniHosts: array(host({ allowStar: true, what: 'SNI host' })),
    destinationSubnets: array(ipOrCidr('destination subnet')),
    port: portNumber(),
    sourceLabels: labels(),
    gateways: array(gatewayRef()),
    sourceNamespace: namespaceName,
  }),
  requireList('sniHosts', 'TLS match must have at least one SNI host'),
);

const tlsRoute: Validator = all(
  object({ match: array(tlsMatch), route: weightedDestinations(routeDestination) }),
  requireList('match', 'TLS route must have at least one match condition'),
  requireList('route', 'TLS route is required'),
);

const l4Match: Validator = object(
  {
    destinationSubnets: array(ipOrCidr('destination subnet')),
    port: portNumber(),
    sourceLabels: labels(),
    gateways: array(gatewayRef()),
    sourceNamespace: namespaceName,
    sourceSubnet: ipOrCidr('source subnet'),
  },
  { deprecated: { sourceSubnet: 'use an AuthorizationPolicy on source IP blocks' } },
);

const tcpRoute: Validator = all(
  object({ match: array(l4Match), route: weightedDestinations(routeDestination) }),
  requireList('route', 'TCP route is required'),
);

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function checkVirtualService(v: Record<string, unknown>, path: string, ctx: Ctx): void {
  const hosts = eachString(v.hosts);
  const gateways = eachString(v.gateways);
  const http = list(v.http);
  if (http.length === 0 && list(v.tcp).length === 0 && list(v.tls).length === 0) {
    fail(ctx, path, 'http, tcp or tls must be provided in virtual service');
  }

  if (hosts.length === 0) {
    // No hosts: a delegate, reachable only through a root VirtualService's `delegate`.
    if (gateways.length > 0)
      fail(ctx, join(path, 'gateways'), 'delegate virtual service must have no gateways specified');
    if (list(v.tls).length > 0)
      fail(ctx, join(path, 'tls'), 'delegate virtual service must have no tls route specified');
    if (list(v.tcp).length > 0)
      fail(ctx, join(path, 'tcp'), 'delegate virtual service must have no tcp route specified');
    http.forEach((r, i) => {
      if (isObject(r) && r.delegate != null) {
        fail(
          ctx,
          join(join(join(path, 'http'), i), 'delegate'),
          'a delegate virtual service cannot delegate again: only one level of delegation is supported',
        );
      }
    });
  }

  const boundToMesh = gateways.length === 0 || gateways.includes('mesh');
  // Sidecars proxy tcp and tls routes; gateway listeners serve HTTP only so far.
  for (const field of ['tcp', 'tls'])
    if (!boundToMesh && list(v[field]).length > 0)
      warn(ctx, join(path, field), `${NOT_ENFORCED} on gateways: Trellis gateways serve HTTP only for now`);
  hosts.forEach((h, i) => {
    if (h === '*' && boundToMesh) {
      fail(
        ctx,
        join(join(path, 'hosts'), i),
        'wildcard host * is not allowed for virtual services bound to the mesh gateway',
      );
    }
  });

  const names = new Map<string, number>();
  let catchAll = -1;
  http.forEach((r, i) => {
    if (!isObject(r)) return;
    if (typeof r.name === 'string' && r.name !== '') {
      const first = names.get(r.name);
      if (first !== undefined) {
        warn(
          ctx,
          join(join(join(path, 'http'), i), 'name'),
          `route name "${r.name}" is also used by http[${first}]`,
        );
      } else names.set(r.name, i);
    }
    if (list(r.match).length === 0 && i < http.length - 1 && catchAll < 0) {
      catchAll = i;
      warn(
        ctx,
        join(join(path, 'http'), i + 1),
        `http[${i + 1}] and later routes are never used: http[${i}] has no match and catches every request`,
      );
    }
  });

  list(v.tls).forEach((route, i) => {
    if (!isObject(route) || hosts.length === 0) return;
    list(route.match).forEach((m, j) => {
      if (!isObject(m)) return;
      eachString(m.sniHosts).forEach((sni, k) => {
        if (!hosts.some((h) => hostCovers(h, sni) || hostCovers(sni, h))) {
          fail(
            ctx,
            `${join(path, 'tls')}[${i}].match[${j}].sniHosts[${k}]`,
            `SNI host ${JSON.stringify(sni)} is not a compatible subset of any of the virtual service hosts: [${hosts.join(', ')}]`,
          );
        }
      });
    });
  });
}

export const virtualServiceSpec: Validator = object(
  {
    hosts: array(host({ allowStar: true, allowIP: true }), { unique: true }),
    gateways: array(gatewayRef(), { unique: true }),
    http: array(httpRoute),
    tls: array(tlsRoute),
    tcp: array(tcpRoute),
    exportTo: exportTo(),
  },
  { check: checkVirtualService },
);

export const virtualService: KindInfo = {
  group: 'networking.istio.io',
  kind: 'VirtualService',
  versions: ['v1', 'v1beta1', 'v1alpha3'],
  plural: 'virtualservices',
  shortNames: ['vs'],
  spec: virtualServiceSpec,
};
