import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { strippedEntry } from './stripped.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

test('the stripped CLI runs, keeps every line where it was, and is made once per source state', () => {
  const main = strippedEntry('src/cli/main.ts');
  assert.equal(strippedEntry('src/cli/main.ts'), main);
  const r = spawnSync(
    process.execPath,
    [main, 'version', '--state-dir', path.join(ROOT, 'no-such-state-dir')],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.match(r.stdout, new RegExp(pkg.version.replaceAll('.', '\\.')));
  const ts = readFileSync(path.join(ROOT, 'src/dataplane/http/pipeline.ts'), 'utf8').split('\n');
  const js = readFileSync(path.join(path.dirname(main), '../dataplane/http/pipeline.js'), 'utf8').split('\n');
  assert.equal(js.length, ts.length);
  const at = ts.findIndex((l) => l.includes('class Pipeline'));
  assert.equal(js[at].trim(), ts[at].trim());
  assert.match(js.join('\n'), /from '\.\/phase\.js'/);
  assert.doesNotMatch(js.join('\n'), /\.ts['"]/);
});
