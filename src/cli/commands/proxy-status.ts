import type { Convergence, ProxyStatus } from '../../controlplane/push/push.ts';
import { TrellisError } from '../../lib/errors.ts';
import { CONNECTION_FLAGS, maxPositionals, oneOf, parseArgs } from '../args.ts';
import { connect, connectionFrom } from '../client.ts';
import { json, table, write, yamlDocs } from '../output.ts';

export const help = `Show every connected proxy and whether it runs the latest configuration.

STATUS is SYNCED (runs its latest snapshot), STALE (a newer snapshot is on its way), NACKED (the proxy
rejected its latest snapshot and keeps running the previous one; the reason is shown below the table)
or NOT SENT (connected, nothing compiled for it yet).

Usage: trellis proxy-status [proxy] [flags]
Alias: ps

Flags:
  -o, --output <format>   json or yaml (the API's answer as is; default: a table)
      --api <url>         control plane API (default $TRELLIS_API, else <state-dir>/control-plane.json)
      --state-dir <dir>   state directory of \`trellis up\` (default $TRELLIS_STATE_DIR, else .trellis)
      --token-file <file> the API's admin credential (default $TRELLIS_ADMIN_TOKEN, else
                          $TRELLIS_ADMIN_TOKEN_FILE, else <state-dir>/admin-token)

Examples:
  trellis proxy-status
  trellis ps reviews-v1-0.default
  trellis ps -o json
`;

const FLAGS = {
  output: { type: 'string', short: 'o' },
  ...CONNECTION_FLAGS,
} as const;

export interface ProxyStatusResponse {
  revision: number;
  convergence: Convergence | null;
  proxies: ProxyStatus[];
}

/** The table, the NACK reasons under it, and the convergence footer. */
export function formatProxyStatus(body: ProxyStatusResponse): string {
  const rows = body.proxies.map((p) => [
    p.id,
    p.role,
    `${p.workload}.${p.namespace}`,
    p.status,
    p.acked?.version ?? '-',
    p.acked ? String(p.acked.revision) : '-',
    p.acked ? String(p.acked.pushMs) : '-',
    p.healthy ? 'yes' : 'no',
  ]);
  let out =
    body.proxies.length === 0
      ? 'No proxies connected.\n'
      : table(['NAME', 'ROLE', 'WORKLOAD', 'STATUS', 'VERSION', 'REVISION', 'PUSH(ms)', 'HEALTHY'], rows);
  const nacks = body.proxies.filter((p) => p.status === 'NACKED' && p.nack);
  if (nacks.length > 0)
    out += `\n${nacks.map((p) => `${p.id}: NACK ${p.nack?.version}: ${p.nack?.reason}\n`).join('')}`;
  const c = body.convergence;
  const converged = !c
    ? 'no change has converged yet'
    : c.proxies === 0
      ? `last change (revision ${c.revision}) had no proxies to reach`
      : `last change converged on all ${c.proxies} prox${c.proxies === 1 ? 'y' : 'ies'} in ${c.ms} ms (revision ${c.revision})`;
  return `${out}\nstore revision ${body.revision}; ${converged}\n`;
}

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'proxy-status');
  maxPositionals(positionals, 1, 'proxy-status');
  const output = oneOf('-o', flags.output, ['json', 'yaml'] as const, 'proxy-status');
  const client = await connect(connectionFrom(flags));
  const body = await client.get<ProxyStatusResponse>('proxy-status');
  const [only] = positionals;
  if (only !== undefined) {
    body.proxies = body.proxies.filter((p) => p.id === only);
    if (body.proxies.length === 0) {
      throw new TrellisError(
        'TRL_NOT_FOUND',
        `no connected proxy "${only}"; run trellis proxy-status to list them`,
      );
    }
  }
  if (output === 'json') write(json(body));
  else if (output === 'yaml') write(yamlDocs([body]));
  else write(formatProxyStatus(body));
  return 0;
}
