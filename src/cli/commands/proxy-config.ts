import type {
  Cluster,
  Endpoint,
  ProxySnapshot,
  Route,
  RouteMatch,
  StringMatch,
} from '../../compile/snapshot.ts';
import type { ClusterCounters, Ejection } from '../../push/protocol.ts';
import { CONNECTION_FLAGS, maxPositionals, oneOf, parseArgs, UsageError } from '../args.ts';
import { connect, connectionFrom } from '../client.ts';
import { json, table, write, yamlDocs } from '../output.ts';
import type { ProxyStatusResponse } from './proxy-status.ts';

export const help = `Show the configuration a proxy was sent: its listeners, routes, clusters and endpoints.

Usage: trellis proxy-config <proxy> [listeners|routes|clusters|endpoints|all] [flags]
Alias: pc

Flags:
  -o, --output <format>   json or yaml (the snapshot, or the chosen section of it; default: tables)
      --api <url>         control plane API (default $TRELLIS_API, else <state-dir>/control-plane.json)
      --state-dir <dir>   state directory of \`trellis up\` (default $TRELLIS_STATE_DIR, else .trellis)
      --token-file <file> the API's admin credential (default $TRELLIS_ADMIN_TOKEN, else
                          $TRELLIS_ADMIN_TOKEN_FILE, else <state-dir>/admin-token)

Examples:
  trellis proxy-config productpage-v1-0.default
  trellis pc productpage-v1-0.default routes
  trellis pc istio-ingressgateway-0.istio-system clusters -o json
`;

const FLAGS = {
  output: { type: 'string', short: 'o' },
  ...CONNECTION_FLAGS,
} as const;

const SECTIONS = ['listeners', 'routes', 'clusters', 'endpoints', 'all'] as const;
type Section = (typeof SECTIONS)[number];

function stringMatch(m: StringMatch): string {
  if (m.exact !== undefined) return m.exact;
  if (m.prefix !== undefined) return `${m.prefix}*`;
  if (m.regex !== undefined) return `~${m.regex}`;
  return '<present>';
}

/** `/reviews*`, `~^/api/v[0-9]+`, `/x header[end-user]=jason`; `/*` when it matches every request. */
export function formatMatch(matches: readonly RouteMatch[]): string {
  if (matches.length === 0) return '/*';
  return matches
    .map((m) => {
      const parts = m.uri ? [`${stringMatch(m.uri)}${m.ignoreUriCase ? ' (any case)' : ''}`] : [];
      if (m.method) parts.push(`method=${stringMatch(m.method)}`);
      if (m.scheme) parts.push(`scheme=${stringMatch(m.scheme)}`);
      if (m.authority) parts.push(`authority=${stringMatch(m.authority)}`);
      if (m.port !== undefined) parts.push(`port=${m.port}`);
      for (const h of m.headers ?? []) parts.push(`header[${h.name}]=${stringMatch(h.match)}`);
      for (const h of m.withoutHeaders ?? []) parts.push(`!header[${h.name}]=${stringMatch(h.match)}`);
      for (const q of m.queryParams ?? []) parts.push(`query[${q.name}]=${stringMatch(q.match)}`);
      return parts.length > 0 ? parts.join(' ') : '/*';
    })
    .join(' | ');
}

/** The clusters a route forwards to, with each one's share when split; or `direct|redirect <status>`. */
export function formatAction(route: Route): string {
  const a = route.action;
  if (a.type === 'direct') return `direct ${a.status}`;
  if (a.type === 'redirect') return `redirect ${a.status}`;
  if (a.clusters.length === 0) return '<none>';
  if (a.clusters.length === 1) return a.clusters[0].cluster;
  // Weights are relative: show each destination's share.
  const total = a.clusters.reduce((n, c) => n + c.weight, 0);
  return a.clusters.map((c) => `${c.cluster} ${Math.round((c.weight / total) * 1000) / 10}%`).join(', ');
}

/** The two shortest domains (`reviews, reviews:9080`) and how many more. */
export function formatDomains(domains: readonly string[]): string {
  if (domains.length <= 2) return domains.join(', ');
  const shortest = [...domains].sort((a, b) => a.length - b.length).slice(0, 2);
  return `${shortest.join(', ')} +${domains.length - 2} more`;
}

export function listenersTable(s: ProxySnapshot): string {
  return table(
    ['NAME', 'TYPE', 'PORT', 'ROUTE TABLE'],
    s.listeners.map((l) => {
      if (l.type === 'gateway') return [l.name, l.type, String(l.port), l.routeTable];
      if (l.type === 'inbound')
        return [l.name, `${l.type} (mTLS ${l.mtls})`, '-', `-> app ${l.ports.join(',')}`];
      return [l.name, l.type, '-', l.routeTable];
    }),
  );
}

export function routesTable(s: ProxySnapshot): string {
  const rows: string[][] = [];
  for (const t of s.routeTables) {
    for (const vh of t.virtualHosts) {
      for (const r of vh.routes) {
        rows.push([
          t.name,
          vh.name,
          formatDomains(vh.domains),
          formatMatch(r.matches),
          formatAction(r),
          r.origin,
        ]);
      }
    }
  }
  return table(['TABLE', 'VIRTUAL HOST', 'DOMAINS', 'MATCH', 'CLUSTERS', 'ORIGIN'], rows);
}

/** What the proxy reported of its upstreams beside its status; empty before its first report. */
export interface UpstreamReport {
  ejections: readonly Ejection[];
  clusters: Readonly<Record<string, ClusterCounters>>;
}

const NO_REPORT: UpstreamReport = { ejections: [], clusters: {} };

/** The proxy's own counters for a cluster, Envoy's `cluster.<name>.*` in a few columns. */
function counters(c: ClusterCounters | undefined): string[] {
  if (!c) return ['-', '-', '-', '-'];
  const n = (k: string) => String(c[k] ?? 0);
  return [
    n('upstream_rq_total'),
    `${n('upstream_rq_retry')} (${n('upstream_rq_retry_limit_exceeded')} URX)`,
    n('upstream_rq_pending_overflow'),
    `${n('outlier_detection_ejections_active')}/${n('outlier_detection_ejections_enforced_total')}`,
  ];
}

export function clustersTable(s: ProxySnapshot, report: UpstreamReport = NO_REPORT): string {
  return table(
    [
      'NAME',
      'DIRECTION',
      'SUBSET',
      'ENDPOINTS',
      'TLS',
      'LB',
      'REQUESTS',
      'RETRIES',
      'OVERFLOWS',
      'EJECTED',
      'ORIGIN',
    ],
    s.clusters.map((c) => [
      c.name,
      c.direction,
      c.subset ?? '-',
      String(c.endpoints.length),
      c.tls.mode,
      c.lb.type,
      ...counters(report.clusters[c.name]),
      c.origin ?? '-',
    ]),
  );
}

interface EndpointRow {
  cluster: Cluster;
  endpoint: Endpoint;
  /** Outlier detection took it out, as the proxy reported. */
  ejection?: Ejection;
}

function endpointRows(s: ProxySnapshot, ejections: readonly Ejection[] = []): EndpointRow[] {
  return s.clusters.flatMap((cluster) =>
    cluster.endpoints.map((endpoint) => {
      const ejection = ejections.find(
        (x) => x.cluster === cluster.name && x.address === endpoint.address && x.port === endpoint.port,
      );
      return { cluster, endpoint, ...(ejection ? { ejection } : {}) };
    }),
  );
}

/** Envoy's health flags in words: an ejected endpoint says why and until when. */
function endpointStatus(r: EndpointRow): string {
  if (r.ejection) return `EJECTED (${r.ejection.reason}) until ${r.ejection.until}`;
  return r.endpoint.healthy ? 'HEALTHY' : 'UNHEALTHY';
}

export function endpointsTable(s: ProxySnapshot, ejections: readonly Ejection[] = []): string {
  return table(
    ['ENDPOINT', 'STATUS', 'IDENTITY', 'CLUSTER'],
    endpointRows(s, ejections).map((r) => [
      `${r.endpoint.address}:${r.endpoint.port}`,
      endpointStatus(r),
      r.endpoint.identity ?? '-',
      r.cluster.name,
    ]),
  );
}

/** Tables for one section, or all of them separated by blank lines. */
export function formatProxyConfig(
  s: ProxySnapshot,
  section: Section = 'all',
  report: UpstreamReport = NO_REPORT,
): string {
  switch (section) {
    case 'listeners':
      return listenersTable(s);
    case 'routes':
      return routesTable(s);
    case 'clusters':
      return clustersTable(s, report);
    case 'endpoints':
      return endpointsTable(s, report.ejections);
    case 'all':
      return [
        listenersTable(s),
        routesTable(s),
        clustersTable(s, report),
        endpointsTable(s, report.ejections),
      ].join('\n');
  }
}

/** What `-o json|yaml` prints: the whole snapshot for `all`, else the section's list. */
export function sectionData(s: ProxySnapshot, section: Section, report: UpstreamReport = NO_REPORT): unknown {
  switch (section) {
    case 'listeners':
      return s.listeners;
    case 'routes':
      return s.routeTables;
    case 'clusters':
      return s.clusters.map((c) => ({
        ...c,
        ...(report.clusters[c.name] ? { counters: report.clusters[c.name] } : {}),
      }));
    case 'endpoints':
      return endpointRows(s, report.ejections).map(({ cluster, endpoint, ejection }) => ({
        cluster: cluster.name,
        ...endpoint,
        ...(ejection ? { ejected: { reason: ejection.reason, until: ejection.until } } : {}),
      }));
    case 'all':
      return s;
  }
}

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'proxy-config');
  maxPositionals(positionals, 2, 'proxy-config');
  const output = oneOf('-o', flags.output, ['json', 'yaml'] as const, 'proxy-config');
  const [proxy, which = 'all'] = positionals;
  if (!proxy) throw new UsageError('which proxy? see trellis proxy-status for their names', 'proxy-config');
  // istioctl says `listener`, `route`, ...: accept the singular too.
  const plural = which === 'all' || which.endsWith('s') ? which : `${which}s`;
  const section =
    oneOf('section', SECTIONS.includes(plural as Section) ? plural : which, SECTIONS, 'proxy-config') ??
    'all';
  const client = await connect(connectionFrom(flags));
  const snap = await client.get<ProxySnapshot>('proxy-config', proxy);
  // Ejections and counters are the proxy's own run-time state, which it reports beside its status.
  let report = NO_REPORT;
  if (section === 'clusters' || section === 'endpoints' || section === 'all') {
    const st = (await client.get<ProxyStatusResponse>('proxy-status')).proxies.find((p) => p.id === proxy);
    report = { ejections: st?.ejections ?? [], clusters: st?.clusters ?? {} };
  }
  if (output === 'json') write(json(sectionData(snap, section, report)));
  else if (output === 'yaml') write(yamlDocs([sectionData(snap, section, report)]));
  else write(formatProxyConfig(snap, section, report));
  return 0;
}
