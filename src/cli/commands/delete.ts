import type { ApplyResult } from '../../controlplane/api-server.ts';
import { CONNECTION_FLAGS, parseArgs, UsageError } from '../args.ts';
import { connect, connectionFrom } from '../client.ts';
import { write } from '../output.ts';
import { readSources } from '../sources.ts';

export const help = `Delete resources by kind and name, or every resource defined in files.

Usage: trellis delete <kind> <name>... [-n ns] [flags]
       trellis delete <kind>/<name> [flags]
       trellis delete -f <file|dir|-> [-f ...] [flags]

Flags:
  -n, --namespace <ns>    namespace (default "default")
  -f, --filename <path>   delete the resources defined in a file, directory or stdin (repeatable)
  -R, --recursive         also read subdirectories of a directory given with -f
      --dry-run           check that the resources exist and report what would be deleted
      --api <url>         control plane API (default $TRELLIS_API, else <state-dir>/control-plane.json)
      --state-dir <dir>   state directory of \`trellis up\` (default $TRELLIS_STATE_DIR, else .trellis)
      --token-file <file> the API's admin credential (default $TRELLIS_ADMIN_TOKEN, else
                          $TRELLIS_ADMIN_TOKEN_FILE, else <state-dir>/admin-token)

Examples:
  trellis delete vs reviews
  trellis delete destinationrule/reviews -n default
  trellis delete -f samples/bookinfo/networking/virtual-service-reviews-v3.yaml
`;

const FLAGS = {
  namespace: { type: 'string', short: 'n' },
  filename: { type: 'list', short: 'f' },
  recursive: { type: 'boolean', short: 'R' },
  'dry-run': { type: 'boolean' },
  ...CONNECTION_FLAGS,
} as const;

interface DeleteResult {
  revision: number;
  results: ApplyResult['results'];
}

/** `VirtualService default/reviews deleted` lines. */
export function formatDeleted(results: DeleteResult['results'], dryRun = false): string {
  return results.map((x) => `${x.resource} ${x.action}${dryRun ? ' (dry run)' : ''}\n`).join('');
}

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'delete');
  const dryRun = flags['dry-run'];
  if (flags.filename.length > 0) {
    if (positionals.length > 0) throw new UsageError('give either -f or <kind> <name>, not both', 'delete');
    if (flags.namespace)
      throw new UsageError('-n does not apply to -f: files name their namespaces', 'delete');
    const sources = await readSources(flags.filename, { recursive: flags.recursive });
    const client = await connect(connectionFrom(flags));
    const r = await client.post<ApplyResult>(['delete'], { sources, dryRun });
    write(`${formatDeleted(r.results, dryRun)}revision ${r.revision}${dryRun ? ' (dry run)' : ''}\n`);
    return 0;
  }
  let [kind, ...names] = positionals;
  if (kind?.includes('/')) {
    if (names.length > 0)
      throw new UsageError('give either <kind>/<name> or <kind> <name>, not both', 'delete');
    names = [kind.slice(kind.indexOf('/') + 1)];
    kind = kind.slice(0, kind.indexOf('/'));
  }
  if (!kind || names.length === 0 || names.some((n) => n === '')) {
    throw new UsageError('what to delete? give <kind> <name> or -f <file>', 'delete');
  }
  const namespace = flags.namespace ?? 'default';
  const client = await connect(connectionFrom(flags));
  // One request, one commit: if any name is missing, nothing is deleted.
  const r = await client.post<DeleteResult>(['delete'], {
    refs: names.map((name) => ({ kind, namespace, name })),
    dryRun,
  });
  write(`${formatDeleted(r.results, dryRun)}revision ${r.revision}${dryRun ? ' (dry run)' : ''}\n`);
  return 0;
}
