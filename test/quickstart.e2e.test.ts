// The README's quick start, literally: `npm start` serves Bookinfo on http://localhost:8080 and Ctrl-C
// stops everything.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { page, ROOT, reviewsVersion, until } from './support/mesh.ts';

test('npm start runs Bookinfo on localhost:8080; Ctrl-C leaves no process', {
  timeout: 120_000,
}, async () => {
  const stateDir = await mkdtemp(path.join(tmpdir(), 'trellis-quickstart-'));
  // Its own process group, so that a Ctrl-C reaches npm and everything below it, as in a terminal.
  const npm = spawn('npm', ['start'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TRELLIS_STATE_DIR: stateDir },
  });
  let out = '';
  npm.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  npm.stderr.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | null>((r) => npm.once('exit', (code) => r(code)));
  try {
    await until(
      'npm start to print that the mesh is up',
      async () => out.includes('Trellis mesh is up'),
      60_000,
    );
    assert.match(out, /ingress gateway\s+http:\/\/localhost:8080/);
    const versions = new Set<string>();
    await until(
      'reviews v1, v2 and v3 on the product page',
      async () => {
        const p = await page('http://localhost:8080/productpage');
        assert.equal(p.status, 200);
        assert.match(p.text, /Comedy of Errors/i);
        assert.doesNotMatch(p.text, /currently unavailable/);
        versions.add(reviewsVersion(p.text) ?? 'none');
        return versions.size === 3;
      },
      30_000,
      0,
    );
    assert.deepEqual([...versions].sort(), ['v1', 'v2', 'v3']);
  } finally {
    process.kill(-npm.pid!, 'SIGINT');
    await exited;
  }
  const pidDir = path.join(stateDir, 'pids');
  for (const f of readdirSync(pidDir)) {
    const pid = Number(readFileSync(path.join(pidDir, f), 'utf8'));
    await until(
      `${f} (pid ${pid}) to exit`,
      async () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      10_000,
    );
  }
});
