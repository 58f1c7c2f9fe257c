// route: the virtual host by authority, then the first route whose match holds, as in Istio. A
// direct response or a redirect is answered here; a forward route goes on to the upstream phase.
// Inbound requests need no route: the port normalize found names the inbound cluster.
import type { RedirectAction } from '../../../compile/snapshot.ts';
import type { Exchange } from '../context.ts';
import type { Phase, Step } from '../phase.ts';
import { CompiledRouteTable, RequestView } from '../route-table.ts';

function unconfigured(rule: string): Step {
  return (ex) => {
    ex.reply(503, 'NC', rule);
    return false;
  };
}

function routeIn(table: CompiledRouteTable): Step {
  return (ex: Exchange) => {
    const vh = table.virtualHost(ex.authority);
    if (!vh) {
      ex.reply(404, 'NR', `no virtual host for ${ex.authority} in ${table.name}`);
      return false;
    }
    ex.virtualHost = vh.name;
    const down = ex.down;
    const view = new RequestView(
      ex.path,
      ex.query,
      down.method,
      'http',
      ex.authority,
      down.headers,
      ex.auth?.claims,
    );
    const route = CompiledRouteTable.route(vh, view);
    if (!route) {
      ex.reply(404, 'NR', `no route matched in ${vh.name}`);
      return false;
    }
    ex.rule = route.origin;
    ex.route = route;
    const action = route.action;
    if (action.type === 'direct') {
      if (action.cluster) ex.service = action.cluster;
      if (action.flags) {
        ex.reply(action.status, action.flags, route.origin, action.body);
        return false;
      }
      ex.code = action.status;
      const body = action.body ?? '';
      down.respond(
        action.status,
        { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) },
        body,
      );
      return false;
    }
    if (action.type === 'redirect') {
      ex.code = action.status;
      const location = redirectLocation(action, ex.hostHeader, ex.path + ex.query);
      down.respond(action.status, { location, 'content-length': 0 }, '');
      return false;
    }
    return true;
  };
}

export const route: Phase = {
  name: 'route',
  setup({ kind, cfg, table, tableName }) {
    if (kind === 'inbound')
      return cfg?.inbound ? undefined : unconfigured('proxy has no inbound configuration yet');
    if (!cfg) return unconfigured('proxy has no configuration yet');
    if (!table)
      return (ex) => {
        ex.reply(404, 'NR', `no virtual host for ${ex.authority} in ${tableName}`);
        return false;
      };
    return routeIn(table);
  },
};

/** Istio's HTTPRedirect: every part not given keeps the request's own. */
function redirectLocation(a: RedirectAction, authority: string, pathAndQuery: string): string {
  const scheme = a.scheme ?? 'http';
  const colon = authority.lastIndexOf(':');
  const reqHost = colon > 0 && !authority.endsWith(']') ? authority.slice(0, colon) : authority;
  const reqPort = colon > 0 && !authority.endsWith(']') ? authority.slice(colon + 1) : undefined;
  const host = a.authority ?? reqHost;
  const port =
    a.port === 'protocol-default'
      ? undefined
      : a.port !== undefined
        ? String(a.port)
        : a.authority
          ? undefined
          : // Envoy: a scheme change drops an explicit port that was the old scheme's default.
            a.scheme && reqPort === (a.scheme === 'https' ? '80' : '443')
            ? undefined
            : reqPort;
  const defaultPort = scheme === 'https' ? '443' : '80';
  let path = pathAndQuery;
  const q = pathAndQuery.indexOf('?');
  const query = q >= 0 ? pathAndQuery.slice(q) : '';
  if (a.uri !== undefined) path = a.uri + query;
  else if (a.prefixRewrite) {
    // The matched prefix is replaced, the rest of the path and the query kept.
    const p = q >= 0 ? pathAndQuery.slice(0, q) : pathAndQuery;
    path = a.prefixRewrite.replacement + p.slice(a.prefixRewrite.prefix.length) + query;
  }
  return `${scheme}://${host}${port && port !== defaultPort ? `:${port}` : ''}${path}`;
}
