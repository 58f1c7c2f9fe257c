import type { ApplyResult } from '../../controlplane/api-server.ts';
import { formatIssue, TrellisError } from '../../lib/errors.ts';
import { CONNECTION_FLAGS, maxPositionals, parseArgs, UsageError } from '../args.ts';
import { connect, connectionFrom } from '../client.ts';
import { write, writeErr } from '../output.ts';
import { readSources } from '../sources.ts';

export const help = `Create or update resources from files. Every document is validated first; if any has an
error, nothing is applied and every problem is listed with its file and line.

Usage: trellis apply -f <file|dir|-> [-f ...] [flags]

Flags:
  -f, --filename <path>   a YAML/JSON file, a directory of *.yaml|*.yml|*.json, or - for stdin (repeatable)
  -R, --recursive         also read subdirectories of a directory given with -f
      --dry-run           validate and report what would change, without changing anything
      --api <url>         control plane API (default $TRELLIS_API, else <state-dir>/control-plane.json)
      --state-dir <dir>   state directory of \`trellis up\` (default $TRELLIS_STATE_DIR, else .trellis)
      --token-file <file> the API's admin credential (default $TRELLIS_ADMIN_TOKEN, else
                          $TRELLIS_ADMIN_TOKEN_FILE, else <state-dir>/admin-token)

Exit codes: 0 applied, 65 invalid input (nothing applied), 64 usage error, 1 other failure.

Examples:
  trellis apply -f samples/bookinfo/networking/virtual-service-reviews-v3.yaml
  trellis apply -f samples/bookinfo/networking --dry-run
  cat vs.yaml | trellis apply -f -
`;

const FLAGS = {
  filename: { type: 'list', short: 'f' },
  recursive: { type: 'boolean', short: 'R' },
  'dry-run': { type: 'boolean' },
  ...CONNECTION_FLAGS,
} as const;

/** `VirtualService default/reviews created` lines (stdout), `Warning: ...` lines (stderr), `revision N`. */
export function formatApply(r: ApplyResult): { results: string; warnings: string; revision: string } {
  const dry = r.dryRun ? ' (dry run)' : '';
  return {
    results: r.results.map((x) => `${x.resource} ${x.action}${dry}\n`).join(''),
    warnings: r.warnings.map((w) => `Warning: ${formatIssue(w)}\n`).join(''),
    revision: `revision ${r.revision}${dry}\n`,
  };
}

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'apply');
  maxPositionals(positionals, 0, 'apply');
  if (flags.filename.length === 0) throw new UsageError('no input: give -f <file|dir|->', 'apply');
  const sources = await readSources(flags.filename, { recursive: flags.recursive });
  const client = await connect(connectionFrom(flags));
  const result = await client.post<ApplyResult>(['apply'], { sources, dryRun: flags['dry-run'] });
  if (result.results.length === 0) {
    throw new TrellisError('TRL_INVALID_ARGUMENT', `no resources found in ${flags.filename.join(', ')}`);
  }
  const out = formatApply(result);
  write(out.results);
  writeErr(out.warnings);
  write(out.revision);
  return 0;
}
