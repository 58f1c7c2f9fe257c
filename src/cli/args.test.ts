import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Flags, oneOf, parseArgs, UsageError } from './args.ts';

const SPECS = {
  filename: { type: 'list', short: 'f' },
  output: { type: 'string', short: 'o' },
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  recursive: { type: 'boolean', short: 'R' },
  'dry-run': { type: 'boolean' },
  api: { type: 'string' },
} as const;

const DEFAULTS: Flags<typeof SPECS> = {
  filename: [],
  output: undefined,
  namespace: undefined,
  'all-namespaces': false,
  recursive: false,
  'dry-run': false,
  api: undefined,
};

describe('parseArgs', () => {
  const cases: {
    name: string;
    argv: string[];
    flags?: Partial<Flags<typeof SPECS>>;
    positionals?: string[];
  }[] = [
    { name: 'nothing', argv: [] },
    { name: 'positionals only', argv: ['vs', 'reviews'], positionals: ['vs', 'reviews'] },
    { name: '--flag value', argv: ['--output', 'yaml'], flags: { output: 'yaml' } },
    { name: '--flag=value', argv: ['--output=json'], flags: { output: 'json' } },
    { name: '--flag= (empty value)', argv: ['--namespace='], flags: { namespace: '' } },
    { name: 'short -o value', argv: ['-o', 'wide'], flags: { output: 'wide' } },
    { name: 'short -oyaml', argv: ['-oyaml'], flags: { output: 'yaml' } },
    { name: 'short -o=yaml', argv: ['-o=yaml'], flags: { output: 'yaml' } },
    { name: 'boolean long', argv: ['--dry-run'], flags: { 'dry-run': true } },
    { name: 'boolean =false', argv: ['--dry-run=false'], flags: { 'dry-run': false } },
    { name: 'boolean short', argv: ['-A'], flags: { 'all-namespaces': true } },
    { name: 'combined booleans', argv: ['-AR'], flags: { 'all-namespaces': true, recursive: true } },
    {
      name: 'combined boolean then value',
      argv: ['-Rf', 'dir'],
      flags: { recursive: true, filename: ['dir'] },
    },
    {
      name: 'repeated list',
      argv: ['-f', 'a.yaml', '--filename', 'b', '-f=c'],
      flags: { filename: ['a.yaml', 'b', 'c'] },
    },
    { name: 'stdin dash as value', argv: ['-f', '-'], flags: { filename: ['-'] } },
    { name: 'dash as positional', argv: ['-'], positionals: ['-'] },
    {
      name: 'flags interleaved with positionals',
      argv: ['vs', '-n', 'prod', 'reviews', '--api', 'http://x'],
      flags: { namespace: 'prod', api: 'http://x' },
      positionals: ['vs', 'reviews'],
    },
    {
      name: '-- ends flags',
      argv: ['-n', 'a', '--', '-o', '--x'],
      flags: { namespace: 'a' },
      positionals: ['-o', '--x'],
    },
    { name: 'last string wins', argv: ['-n', 'a', '-n', 'b'], flags: { namespace: 'b' } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const got = parseArgs(c.argv, SPECS);
      assert.deepEqual(got.flags, { ...DEFAULTS, ...c.flags });
      assert.deepEqual(got.positionals, c.positionals ?? []);
    });
  }

  const errors: { name: string; argv: string[]; message: RegExp }[] = [
    {
      name: 'unknown long flag with hint',
      argv: ['--dryrun'],
      message: /unknown flag --dryrun \(did you mean "--dry-run"\?\)/,
    },
    { name: 'unknown long flag, no hint', argv: ['--zzzzzzzz'], message: /^unknown flag --zzzzzzzz$/ },
    { name: 'unknown short flag', argv: ['-x'], message: /unknown flag -x/ },
    { name: 'unknown in combined shorts', argv: ['-Ax'], message: /unknown flag -x in -Ax/ },
    { name: 'missing value', argv: ['-o'], message: /flag -o needs a value/ },
    { name: 'missing long value', argv: ['--namespace'], message: /flag --namespace needs a value/ },
    { name: 'boolean with junk value', argv: ['--dry-run=server'], message: /takes no value/ },
  ];
  for (const c of errors) {
    test(`rejects: ${c.name}`, () => {
      assert.throws(
        () => parseArgs(c.argv, SPECS, 'get'),
        (err: unknown) => err instanceof UsageError && c.message.test(err.message) && err.command === 'get',
      );
    });
  }
});

describe('oneOf', () => {
  test('accepts an allowed value and undefined', () => {
    assert.equal(oneOf('-o', 'yaml', ['yaml', 'json']), 'yaml');
    assert.equal(oneOf('-o', undefined, ['yaml', 'json']), undefined);
  });
  test('rejects with a hint', () => {
    assert.throws(
      () => oneOf('-o', 'jsn', ['yaml', 'json']),
      /-o must be one of yaml, json, found "jsn" \(did you mean "json"\?\)/,
    );
  });
});
