// The `trellis` CLI: dispatches `trellis <command> [args]` to src/cli/commands/<command>.ts, loaded
// lazily so a command pays only for what it uses. Exit codes: 0 ok, 1 failure, 64 usage error,
// 65 invalid input. Expected errors print `error: <message>` (and their issues), never a stack trace.
import { didYouMean, EXIT_USAGE } from './args.ts';
import { describeError } from './report.ts';

export interface CommandModule {
  run(args: string[]): Promise<number>;
  help: string;
}

interface Command {
  name: string;
  aliases?: string[];
  summary: string;
  load(): Promise<CommandModule>;
}

export const COMMANDS: Command[] = [
  {
    name: 'up',
    summary: 'run a mesh locally: control plane, workloads, sidecars, gateways',
    load: () => import('./commands/up.ts'),
  },
  {
    name: 'apply',
    summary: 'create or update resources from files',
    load: () => import('./commands/apply.ts'),
  },
  { name: 'get', summary: 'show resources', load: () => import('./commands/get.ts') },
  { name: 'delete', summary: 'delete resources', load: () => import('./commands/delete.ts') },
  {
    name: 'proxy-status',
    aliases: ['ps'],
    summary: 'show every proxy and whether it runs the latest config',
    load: () => import('./commands/proxy-status.ts'),
  },
  {
    name: 'proxy-config',
    aliases: ['pc'],
    summary: "show a proxy's listeners, routes, clusters and endpoints",
    load: () => import('./commands/proxy-config.ts'),
  },
  {
    name: 'why',
    summary: 'explain what the mesh would do with a request, phase by phase',
    load: () => import('./commands/why.ts'),
  },
  {
    name: 'ca',
    summary: "show the mesh CA's roots, or rotate its root without an outage",
    load: () => import('./commands/ca.ts'),
  },
  {
    name: 'version',
    summary: 'print the CLI and control plane versions',
    load: () => import('./commands/version.ts'),
  },
  {
    name: 'proxy',
    summary: 'run one proxy (started by `trellis up`)',
    load: () => import('./commands/proxy.ts'),
  },
  {
    name: 'control-plane',
    summary: 'run the control plane on its own',
    load: () => import('./commands/control-plane.ts'),
  },
];

export function usage(): string {
  const width = Math.max(
    ...COMMANDS.map((c) => c.name.length + (c.aliases ? c.aliases.join(', ').length + 3 : 0)),
  );
  const lines = COMMANDS.map((c) => {
    const name = c.aliases ? `${c.name} (${c.aliases.join(', ')})` : c.name;
    return `  ${name.padEnd(width)}   ${c.summary}`;
  });
  return `Trellis: a service mesh with Istio's configuration API.

Usage: trellis <command> [args] [flags]

Commands:
${lines.join('\n')}

Run 'trellis <command> --help' (or 'trellis help <command>') for a command's flags and examples.
Exit codes: 0 ok, 1 failure, 64 usage error, 65 invalid input.
`;
}

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

function printHelp(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function unknownCommand(name: string): number {
  const names = COMMANDS.flatMap((c) => [c.name, ...(c.aliases ?? [])]);
  process.stderr.write(
    `error: unknown command "${name}" for "trellis"${didYouMean(name, names)}\nRun 'trellis --help' for usage.\n`,
  );
  return EXIT_USAGE;
}

/** `--help`/`-h` before any `--`. */
function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === '--help' || a === '-h');
}

export async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (
    first === undefined ||
    first === '--help' ||
    first === '-h' ||
    (first === 'help' && rest.length === 0)
  ) {
    printHelp(usage());
    return 0;
  }
  if (first === 'help') {
    const cmd = findCommand(rest[0]);
    if (!cmd) return unknownCommand(rest[0]);
    printHelp((await cmd.load()).help);
    return 0;
  }
  if (first === '--version') return main(['version', ...rest]);
  if (first.startsWith('-')) {
    process.stderr.write(
      `error: flags come after the command, found "${first}"\nRun 'trellis --help' for usage.\n`,
    );
    return EXIT_USAGE;
  }
  const cmd = findCommand(first);
  if (!cmd) return unknownCommand(first);
  const mod = await cmd.load();
  if (wantsHelp(rest)) {
    printHelp(mod.help);
    return 0;
  }
  return mod.run([...rest]);
}

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  // `trellis get vs | head`: the reader went away; that is not a failure of ours.
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  const { text, exitCode } = describeError(err, process.env.TRELLIS_DEBUG === '1');
  process.stderr.write(text);
  process.exitCode = exitCode;
}
