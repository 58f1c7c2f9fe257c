import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { ProxyNode } from '../../compile/snapshot.ts';
import { SILENT } from '../../lib/log.ts';
import { Registry } from './registry.ts';

function node(id: string): ProxyNode {
  return {
    id,
    role: 'sidecar',
    workload: id,
    namespace: 'default',
    serviceAccount: 'sa',
    labels: { app: id },
    address: '127.0.0.1',
    inboundPort: 1,
    ports: [{ port: 80 }],
    healthy: true,
  };
}

test('an instance leaves with its stream, but not when a newer stream replaced it', () => {
  const r = new Registry({ log: SILENT });
  const first = {};
  const second = {};
  r.upsert(node('a'), first);
  r.upsert(node('a'), second); // the proxy reconnected
  r.remove('a', first); // the old stream closes late
  assert.equal(r.list().length, 1);
  r.remove('a', second);
  assert.equal(r.list().length, 0);
});

test('health changes are recorded and announced once', () => {
  const r = new Registry({ log: SILENT });
  let changes = 0;
  r.onChange(() => changes++);
  r.upsert(node('a'), {});
  r.setHealth('a', false);
  r.setHealth('a', false);
  assert.equal(r.get('a')?.healthy, false);
  assert.equal(changes, 2);
});

test('after a restart, remembered instances serve until the grace period ends, unless their proxy returns', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-registry-'));
  const before = new Registry({ stateDir: dir, log: SILENT });
  before.upsert(node('a'), {});
  before.upsert(node('b'), {});
  await before.close();

  const after = new Registry({ stateDir: dir, log: SILENT });
  await after.restore(150);
  assert.deepEqual(
    after
      .list()
      .map((n) => n.id)
      .sort(),
    ['a', 'b'],
  );
  after.upsert(node('a'), {}); // a's proxy reconnects in time
  await new Promise((r) => setTimeout(r, 250));
  assert.deepEqual(
    after.list().map((n) => n.id),
    ['a'],
  );
  await after.close();
});

test('a burst of changes is persisted: the file ends up with the last state, whatever arrived mid-write', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trellis-registry-'));
  const r = new Registry({ stateDir: dir, log: SILENT });
  for (let i = 0; i < 200; i++) {
    r.upsert(node(`n${i}`), {});
    if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve)); // let a write start
  }
  r.setHealth('n7', false);
  await r.close();
  const saved = JSON.parse(await readFile(path.join(dir, 'registry.json'), 'utf8')) as ProxyNode[];
  assert.equal(saved.length, 200);
  assert.equal(saved.find((n) => n.id === 'n7')?.healthy, false);
});
