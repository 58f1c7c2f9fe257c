// Every failure a user can see carries a stable TRL_ code, greppable across releases (like fastify's FST_ERR_).

export type ErrorCode =
  | 'TRL_INVALID_ARGUMENT'
  | 'TRL_VALIDATION'
  | 'TRL_NOT_FOUND'
  | 'TRL_CONFLICT'
  | 'TRL_STORE'
  | 'TRL_UNAUTHENTICATED'
  | 'TRL_PERMISSION_DENIED'
  | 'TRL_CA'
  | 'TRL_SNAPSHOT_REJECTED'
  | 'TRL_UNAVAILABLE'
  | 'TRL_INTERNAL';

/** One problem found in user input: where it is and what is wrong. */
export interface Issue {
  file?: string;
  line?: number;
  column?: number;
  /** Field path inside the document, e.g. `spec.http[0].match[1].uri.regex`. */
  path: string;
  message: string;
  /** The document's kind and name, when known. */
  resource?: string;
}

export class TrellisError extends Error {
  readonly code: ErrorCode;
  readonly issues: Issue[];
  readonly status: number;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { issues?: Issue[]; status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
    this.name = 'TrellisError';
    this.code = code;
    this.issues = opts.issues ?? [];
    this.status = opts.status ?? statusFor(code);
  }

  toJSON(): { code: ErrorCode; message: string; issues?: Issue[] } {
    return this.issues.length > 0
      ? { code: this.code, message: this.message, issues: this.issues }
      : { code: this.code, message: this.message };
  }
}

function statusFor(code: ErrorCode): number {
  switch (code) {
    case 'TRL_INVALID_ARGUMENT':
    case 'TRL_VALIDATION':
      return 400;
    case 'TRL_UNAUTHENTICATED':
      return 401;
    case 'TRL_PERMISSION_DENIED':
      return 403;
    case 'TRL_NOT_FOUND':
      return 404;
    case 'TRL_CONFLICT':
      return 409;
    case 'TRL_UNAVAILABLE':
      return 503;
    default:
      return 500;
  }
}

/** `file:line:column: path: message` — the one way an issue is printed. */
export function formatIssue(issue: Issue): string {
  let where = issue.file ?? '';
  if (issue.line !== undefined)
    where += `${where ? ':' : 'line '}${issue.line}${issue.column ? `:${issue.column}` : ''}`;
  const head = [where, issue.resource].filter(Boolean).join(' ');
  const path = issue.path ? `${issue.path}: ` : '';
  return `${head ? `${head}: ` : ''}${path}${issue.message}`;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
