// Table-test support for the kind tests (imported by *.test.ts only): builds a one-document YAML input
// around a spec and checks the issues validation reports, by field path, message fragment and line.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiVersionOf, lookupKind } from '../../src/api/kinds/index.ts';
import { type ValidationResult, validateText } from '../../src/api/validate.ts';
import { formatIssue, type Issue } from '../../src/lib/errors.ts';

export interface Expected {
  path: string;
  /** A fragment of the message. */
  message: string;
  line?: number;
}

export interface Case {
  name: string;
  /** The spec, as YAML; its first line is line 6 of the document. */
  spec: string;
  errors?: Expected[];
  /** Warnings that must be present; `none` asserts there are none at all. */
  warnings?: Expected[] | 'none';
}

/** The first line of the spec within a document built by `doc`. */
export const SPEC_LINE = 6;

export function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').replace(/\s+$/, '').split('\n');
  const indent = Math.min(
    ...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length),
  );
  return lines.map((l) => l.slice(indent)).join('\n');
}

export function doc(kind: string, spec: string, name = 'example'): string {
  const info = lookupKind(kind);
  if (!info) throw new Error(`no kind ${kind}`);
  const body = dedent(spec)
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  return `apiVersion: ${apiVersionOf(info)}\nkind: ${info.kind}\nmetadata:\n  name: ${name}\nspec:\n${body}\n`;
}

function show(issues: Issue[]): string {
  return issues.length === 0
    ? '  (none)'
    : issues.map((i) => `  ${formatIssue(i)} [path ${i.path}]`).join('\n');
}

export function expectIssue(issues: Issue[], want: Expected, what: 'error' | 'warning'): void {
  const hit = issues.find(
    (i) =>
      i.path === want.path &&
      i.message.includes(want.message) &&
      (want.line === undefined || i.line === want.line),
  );
  assert.ok(
    hit,
    `expected ${what} at ${want.path}${want.line ? ` (line ${want.line})` : ''} containing ${JSON.stringify(want.message)}; got:\n${show(issues)}`,
  );
}

export function expectResult(result: ValidationResult, c: Pick<Case, 'errors' | 'warnings'>): void {
  const errors = c.errors ?? [];
  if (errors.length === 0) {
    assert.equal(result.errors.length, 0, `expected no errors; got:\n${show(result.errors)}`);
    assert.ok(result.resources.length > 0, 'expected the resources of a valid input');
  } else {
    for (const e of errors) expectIssue(result.errors, e, 'error');
    assert.equal(result.resources.length, 0, 'an input with errors must return no resources');
  }
  if (c.warnings === 'none') {
    assert.equal(result.warnings.length, 0, `expected no warnings; got:\n${show(result.warnings)}`);
  } else {
    for (const w of c.warnings ?? []) expectIssue(result.warnings, w, 'warning');
  }
}

/** One test per case, each validating `doc(kind, case.spec)`. */
export function table(kind: string, cases: Case[]): void {
  for (const c of cases) {
    test(`${kind}: ${c.name}`, () => expectResult(validateText(doc(kind, c.spec), `${kind}.yaml`), c));
  }
}
