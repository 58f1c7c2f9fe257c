// Every failure a user can see carries a stable TRL_ code, greppable across releases (like fastify's FST_ERR_).

import { type ErrorCode, statusOf } from './codes.ts';

export type { ErrorCode } from './codes.ts';

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

  constructor(code: ErrorCode, message: string, opts: { issues?: Issue[]; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'TrellisError';
    this.code = code;
    this.issues = opts.issues ?? [];
    this.status = statusOf(code);
  }

  toJSON(): { code: ErrorCode; message: string; issues?: Issue[] } {
    return this.issues.length > 0
      ? { code: this.code, message: this.message, issues: this.issues }
      : { code: this.code, message: this.message };
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
