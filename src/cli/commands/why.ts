import type { ForwardAction, ProxyNode, ProxySnapshot } from '../../compile/snapshot.ts';
import { type Hop, type MeshView, outcomes, type WhyAnswer, why } from '../../simulate/why.ts';
import { CONNECTION_FLAGS, oneOf, parseArgs, UsageError } from '../args.ts';
import { type ApiClient, connect, connectionFrom } from '../client.ts';
import { json, write } from '../output.ts';

export const help = `Explain what the mesh would do with a request: each proxy on its path, each phase's
verdict there (normalize, authenticate, authorize, route), the policy and rule that allowed or denied
it, the JWT claims used, the route and the destinations. It runs the proxies' own code on the
snapshots they run now, and sends nothing.

Usage: trellis why <source> <method> <url> [flags]

<source> is a workload (name or namespace/name), a proxy id, a SPIFFE identity
(spiffe://cluster.local/ns/default/sa/bookinfo-productpage, or without spiffe://), or
"external" for a client outside the mesh. A URL at a gateway's address (http://localhost:8080/...)
starts at the gateway, as an outside client's request does; any other URL leaves from the source's
sidecar. An identity no workload runs as goes straight to the service's sidecars.

Flags:
  -H, --header <name: value>  a request header (repeatable)
      --jwt <token>           send the token as "Authorization: Bearer <token>"
  -o, --output <format>       json (the whole answer)
      --api <url>             control plane API (default $TRELLIS_API, else <state-dir>/control-plane.json)
      --state-dir <dir>       state directory of \`trellis up\` (default $TRELLIS_STATE_DIR, else .trellis)
      --token-file <file>     the API's admin credential (default <state-dir>/admin-token)

Exit code 0 when the request would reach an app, 1 when a proxy would answer it itself (denied, no
route, ...) on every path.

Examples:
  trellis why productpage GET http://reviews:9080/reviews/0 -H 'end-user: jason'
  trellis why external GET http://localhost:8080/productpage --jwt "$TOKEN"
  trellis why cluster.local/ns/default/sa/sleep GET http://details:9080/details/0
`;

const FLAGS = {
  header: { type: 'list', short: 'H' },
  jwt: { type: 'string' },
  output: { type: 'string', short: 'o' },
  ...CONNECTION_FLAGS,
} as const;

function headersOf(list: readonly string[], jwt: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const h of list) {
    const colon = h.indexOf(':');
    const name = colon > 0 ? h.slice(0, colon).trim().toLowerCase() : '';
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name))
      throw new UsageError(`-H ${JSON.stringify(h)}: expected "name: value"`, 'why');
    const value = h.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  if (jwt !== undefined) headers.authorization = `Bearer ${jwt}`;
  return headers;
}

/** The registry and the snapshots the proxies run (each fetched once), from the control plane's API. */
export async function meshView(client: ApiClient): Promise<MeshView> {
  const { instances } = await client.get<{ instances: ProxyNode[] }>('registry');
  const snapshots = new Map<string, Promise<ProxySnapshot>>();
  return {
    nodes: instances,
    snapshot(id) {
      let s = snapshots.get(id);
      if (!s) {
        s = client.get<ProxySnapshot>('proxy-config', id);
        snapshots.set(id, s);
      }
      return s;
    },
  };
}

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'why');
  if (positionals.length !== 3)
    throw new UsageError(
      'expected <source> <method> <url>, e.g. productpage GET http://reviews:9080/',
      'why',
    );
  const output = oneOf('-o', flags.output, ['json'] as const, 'why');
  const [source, method, url] = positionals;
  if (!/^[A-Za-z]+$/.test(method))
    throw new UsageError(`${JSON.stringify(method)} is not an HTTP method`, 'why');
  const client = await connect(connectionFrom(flags));
  const answer = await why(await meshView(client), {
    source,
    method,
    url,
    headers: headersOf(flags.header, flags.jwt),
  });
  if (output === 'json') write(json({ ...answer, outcomes: outcomes(answer.hops) }));
  else write(formatWhy(answer));
  return outcomes(answer.hops).some((o) => 'app' in o) ? 0 : 1;
}

export function formatWhy(answer: WhyAnswer): string {
  const s = answer.source;
  const from =
    s.kind === 'external'
      ? 'a client outside the mesh'
      : s.kind === 'workload'
        ? `${s.proxy} (${s.identity})`
        : `${s.identity} (no workload runs as it)`;
  const r = answer.request;
  const lines = [`${r.method} ${r.authority}${r.path} from ${from}`];
  const walk = (hops: readonly Hop[], depth: number) => {
    for (const hop of hops) {
      lines.push(...formatHop(hop, '  '.repeat(depth)));
      if (hop.next) walk(hop.next, depth + 1);
    }
  };
  walk(answer.hops, 0);
  lines.push('', 'result:');
  for (const o of outcomes(answer.hops)) {
    if ('app' in o) lines.push(`  forwarded to the app of ${o.proxy} (port ${o.app.port})`);
    else
      lines.push(
        `  ${o.answered.status} from ${o.proxy}${o.answered.flag !== '-' ? ` (${o.answered.flag})` : ''}: ${o.answered.reason}`,
      );
  }
  return `${lines.join('\n')}\n`;
}

function formatHop(hop: Hop, indent: string): string[] {
  const sim = hop.simulation;
  const via = sim.routeTable ? ` (routes ${sim.routeTable})` : hop.peer ? `, mTLS from ${hop.peer}` : '';
  const out = [`${indent}${hop.proxy}, ${hop.kind} listener${via}`];
  const at = `${indent}  `;
  for (const p of sim.phases) {
    out.push(
      `${at}${p.phase.padEnd(13)}${(p.verdict === 'answered' ? 'ANSWERED' : 'passed').padEnd(9)}${phaseDetail(hop, p.phase, p.verdict)}`,
    );
  }
  return out;
}

function phaseDetail(hop: Hop, phase: string, verdict: 'passed' | 'answered'): string {
  const sim = hop.simulation;
  if (verdict === 'answered' && sim.refused) {
    const f = sim.refused.flag !== '-' ? ` ${sim.refused.flag}` : '';
    return `  ${sim.refused.status}${f}: ${sim.refused.reason}`;
  }
  switch (phase) {
    case 'normalize':
      return sim.targetPort !== undefined
        ? `  path ${sim.path}, workload port ${sim.targetPort}`
        : `  path ${sim.path}`;
    case 'authenticate':
      if (!sim.auth) return '  no JWT: authorization decides';
      return `  JWT of ${sim.auth.principal}, claims ${JSON.stringify(sim.auth.claims)}`;
    case 'authorize':
      return sim.authorization?.rule
        ? `  allowed by ${sim.authorization.rule}`
        : '  no ALLOW policy applies: allowed';
    case 'route': {
      if (!sim.route) return '';
      const a = sim.action;
      const clusters = sim.clusters ?? [];
      const total = clusters.reduce((n, c) => n + c.weight, 0);
      const to =
        a?.type === 'forward'
          ? clusters
              .map((c) => {
                const share = clusters.length > 1 ? ` ${Math.round((c.weight / total) * 1000) / 10}%` : '';
                return `${c.name}${share} (${c.endpoints.length} healthy)`;
              })
              .join(', ')
          : a
            ? `${a.type} ${a.status}`
            : '';
      return [`  ${sim.route.origin} → ${to}`, ...(a?.type === 'forward' ? routePolicy(a) : [])].join('\n');
    }
    default:
      return '';
  }
}

/** What a forwarding route does besides choosing clusters, one line each. */
function routePolicy(a: ForwardAction): string[] {
  const lines: string[] = [];
  const f = a.fault;
  if (f?.delay) lines.push(`fault: delay ${f.delay.ms}ms for ${f.delay.percent}% of requests (flag DI)`);
  if (f?.abort)
    lines.push(
      `fault: abort ${f.abort.grpcStatus !== undefined ? `grpc-status ${f.abort.grpcStatus}` : f.abort.status} for ${f.abort.percent}% of requests (flag FI)`,
    );
  if (a.timeoutMs) lines.push(`timeout ${a.timeoutMs}ms`);
  if (a.retry) {
    const on = [...a.retry.on, ...a.retry.statusCodes.map(String)].join(',');
    const perTry = a.retry.perTryTimeoutMs ? `, ${a.retry.perTryTimeoutMs}ms per try` : '';
    lines.push(`retries: up to ${a.retry.attempts} on ${on}${perTry} (${a.retry.origin})`);
  }
  if (a.rewrite?.uri !== undefined || a.rewrite?.regex)
    lines.push(
      `rewrite: path ${a.rewrite.regex ? `~${a.rewrite.regex.match} → ${a.rewrite.regex.rewrite}` : `${a.rewrite.prefix ?? ''}* → ${a.rewrite.uri}`}`,
    );
  if (a.rewrite?.authority) lines.push(`rewrite: authority ${a.rewrite.authority}`);
  for (const m of a.mirrors ?? []) lines.push(`mirror: ${m.percent}% to ${m.cluster}`);
  return lines.map((l) => `    ${l}`);
}
