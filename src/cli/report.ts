// How a failure is shown: `error: <message>`, each issue on its own line, never a stack trace for an
// expected error (set TRELLIS_DEBUG=1 to see one), and the exit code that goes with it.
import { formatIssue, TrellisError } from '../lib/errors.ts';
import { EXIT_DATA, EXIT_FAILURE, EXIT_USAGE, UsageError } from './args.ts';

/** What to print for a failure, and the exit code: 64 usage, 65 invalid input, 1 anything else. */
export function describeError(err: unknown, debug = false): { text: string; exitCode: number } {
  if (err instanceof UsageError) {
    const help = err.command ? `trellis ${err.command} --help` : 'trellis --help';
    return { text: `error: ${err.message}\nRun '${help}' for usage.\n`, exitCode: EXIT_USAGE };
  }
  if (err instanceof TrellisError) {
    const issues = err.issues.map((i) => `  ${formatIssue(i)}\n`).join('');
    const exitCode = err.code === 'TRL_VALIDATION' ? EXIT_DATA : EXIT_FAILURE;
    const trace = debug && err.stack ? `${err.stack}\n` : '';
    return { text: `error: ${err.message}\n${issues}${trace}`, exitCode };
  }
  const message = err instanceof Error ? err.message : String(err);
  const trace = debug && err instanceof Error && err.stack ? `${err.stack}\n` : '';
  return { text: `error: ${message}\n${trace}`, exitCode: EXIT_FAILURE };
}
