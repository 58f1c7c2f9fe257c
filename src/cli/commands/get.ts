import {
  type AuthorizationPolicySpec,
  type DestinationRuleSpec,
  type GatewaySpec,
  manifestOf,
  type ServiceSpec,
  type VirtualServiceSpec,
  type WorkloadSpec,
} from '../../api/kinds/index.ts';
import type { Resource } from '../../api/resource.ts';
import { CONVERTED_FROM_ANNOTATION } from '../../compile/legacy-rbac.ts';
import { CONNECTION_FLAGS, maxPositionals, oneOf, parseArgs, UsageError } from '../args.ts';
import { connect, connectionFrom } from '../client.ts';
import { age, json, labelsOf, list, table, write, writeErr, yamlDocs } from '../output.ts';

export const help = `Show resources of one kind.

Usage: trellis get <kind> [name] [flags]
       trellis get <kind>/<name> [flags]

Kinds: virtualservice (vs), destinationrule (dr), gateway (gw), serviceentry (se), peerauthentication (pa),
requestauthentication (ra), authorizationpolicy (ap), service (svc), configmap (cm), workload; plurals and
<plural>.<group> work too.

Flags:
  -n, --namespace <ns>    namespace (default "default")
  -A, --all-namespaces    every namespace
  -o, --output <format>   yaml, json or wide (default: a table)
      --api <url>         control plane API (default $TRELLIS_API, else <state-dir>/control-plane.json)
      --state-dir <dir>   state directory of \`trellis up\` (default $TRELLIS_STATE_DIR, else .trellis)
      --token-file <file> the API's admin credential (default $TRELLIS_ADMIN_TOKEN, else
                          $TRELLIS_ADMIN_TOKEN_FILE, else <state-dir>/admin-token)

Examples:
  trellis get vs
  trellis get virtualservice reviews -o yaml
  trellis get dr -A
  trellis get workloads -o wide
`;

const FLAGS = {
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  output: { type: 'string', short: 'o' },
  ...CONNECTION_FLAGS,
} as const;

const OUTPUTS = ['yaml', 'json', 'wide'] as const;
type Output = (typeof OUTPUTS)[number];

interface Columns {
  headers: string[];
  cells(r: Resource): string[];
}

function spec<T>(r: Resource): Partial<T> {
  return (r.spec ?? {}) as Partial<T>;
}

/** Kind-specific columns (between NAME/NAMESPACE and AGE). */
export function columnsFor(kind: string): Columns {
  switch (kind) {
    case 'VirtualService':
      return {
        headers: ['HOSTS', 'GATEWAYS'],
        cells: (r) => {
          const s = spec<VirtualServiceSpec>(r);
          return [list(s.hosts), s.gateways?.length ? s.gateways.join(',') : 'mesh'];
        },
      };
    case 'DestinationRule':
      return {
        headers: ['HOST', 'SUBSETS'],
        cells: (r) => {
          const s = spec<DestinationRuleSpec>(r);
          return [s.host ?? '', list(s.subsets?.map((x) => x.name))];
        },
      };
    case 'Gateway':
      return {
        headers: ['SERVERS'],
        cells: (r) => [
          list(
            spec<GatewaySpec>(r).servers?.map(
              (x) => `${x.port?.number}/${x.port?.protocol?.toUpperCase()}[${(x.hosts ?? []).join(' ')}]`,
            ),
          ),
        ],
      };
    case 'Service':
      return {
        headers: ['PORTS', 'SELECTOR'],
        cells: (r) => {
          const s = spec<ServiceSpec>(r);
          return [list(s.ports?.map((p) => `${p.port}/${p.protocol ?? 'TCP'}`)), labelsOf(s.selector)];
        },
      };
    case 'AuthorizationPolicy':
      return {
        headers: ['ACTION', 'RULES', 'FROM'],
        cells: (r) => {
          const s = spec<AuthorizationPolicySpec>(r);
          // Policies the legacy RBAC kinds stand for are listed with the rest, and say so.
          const from = r.metadata.annotations?.[CONVERTED_FROM_ANNOTATION];
          return [s.action ?? 'ALLOW', String(s.rules?.length ?? 0), from ? `converted: ${from}` : '-'];
        },
      };
    case 'Workload':
      return {
        headers: ['ROLE', 'REPLICAS', 'LABELS'],
        cells: (r) => {
          const s = spec<WorkloadSpec>(r);
          return [s.role ?? 'sidecar', String(s.replicas ?? 1), labelsOf(s.labels)];
        },
      };
    default:
      return { headers: [], cells: () => [] };
  }
}

/** The default (and `-o wide`) table; rows sorted by namespace, then name. */
export function formatTable(
  items: readonly Resource[],
  opts: { allNamespaces?: boolean; wide?: boolean; now?: number } = {},
): string {
  const sorted = [...items].sort(
    (a, b) =>
      a.kind.localeCompare(b.kind) ||
      a.metadata.namespace.localeCompare(b.metadata.namespace) ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
  const cols = columnsFor(sorted[0]?.kind ?? '');
  const headers = [
    ...(opts.allNamespaces ? ['NAMESPACE'] : []),
    'NAME',
    ...cols.headers,
    'AGE',
    ...(opts.wide ? ['GENERATION', 'REVISION'] : []),
  ];
  const rows = sorted.map((r) => [
    ...(opts.allNamespaces ? [r.metadata.namespace] : []),
    r.metadata.name,
    ...cols.cells(r),
    age(r.metadata.creationTimestamp, opts.now),
    ...(opts.wide ? [String(r.metadata.generation ?? ''), r.metadata.resourceVersion ?? ''] : []),
  ]);
  return table(headers, rows);
}

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'get');
  maxPositionals(positionals, 2, 'get');
  const output: Output | undefined = oneOf('-o', flags.output, OUTPUTS, 'get');
  let [kind, name] = positionals;
  if (!kind) throw new UsageError('which kind? e.g. trellis get virtualservices', 'get');
  if (kind.includes('/')) {
    if (name) throw new UsageError(`give either <kind>/<name> or <kind> <name>, not both`, 'get');
    [kind, name] = [kind.slice(0, kind.indexOf('/')), kind.slice(kind.indexOf('/') + 1)];
  }
  const all = flags['all-namespaces'];
  if (all && flags.namespace) throw new UsageError('give either -n or -A, not both', 'get');
  if (all && name)
    throw new UsageError('a resource cannot be fetched by name across all namespaces; use -n', 'get');
  const namespace = all ? '*' : (flags.namespace ?? 'default');
  const client = await connect(connectionFrom(flags));

  const items = name
    ? [await client.get<Resource>('resources', kind, namespace, name)]
    : (await client.get<{ items: Resource[] }>('resources', kind, namespace)).items;
  if (output === 'json') {
    write(json(name ? manifestOf(items[0]) : { items: items.map(manifestOf) }));
    return 0;
  }
  if (output === 'yaml') {
    write(yamlDocs(items.map(manifestOf)));
    return 0;
  }
  if (items.length === 0) {
    writeErr(all ? 'No resources found.\n' : `No resources found in ${namespace} namespace.\n`);
    return 0;
  }
  write(formatTable(items, { allNamespaces: all, wide: output === 'wide' }));
  return 0;
}
