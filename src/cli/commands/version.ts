import { CONNECTION_FLAGS, maxPositionals, parseArgs } from '../args.ts';
import { connect, connectionFrom } from '../client.ts';
import { write } from '../output.ts';
import { packageVersion } from '../version-info.ts';

export const help = `Print the CLI's version and, when one is reachable, the control plane's.

Usage: trellis version [flags]

Flags:
      --api <url>         control plane API (default $TRELLIS_API, else <state-dir>/control-plane.json)
      --state-dir <dir>   state directory of \`trellis up\` (default $TRELLIS_STATE_DIR, else .trellis)
      --token-file <file> the API's admin credential (default $TRELLIS_ADMIN_TOKEN, else
                          $TRELLIS_ADMIN_TOKEN_FILE, else <state-dir>/admin-token)

Examples:
  trellis version
`;

const FLAGS = { ...CONNECTION_FLAGS } as const;

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'version');
  maxPositionals(positionals, 0, 'version');
  write(`trellis ${packageVersion()}\n`);
  try {
    const client = await connect(connectionFrom(flags, 1000));
    const v = await client.get<{ version: string }>('version');
    write(`control plane ${v.version}\n`);
  } catch {
    // No control plane running (or not reachable): the CLI's version is all there is to say.
  }
  return 0;
}
