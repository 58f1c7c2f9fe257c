import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { PortAllocator } from './ports.ts';

test('ports are bindable, distinct, and outside the ephemeral range', async () => {
  const [ephemeral] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number);
  const a = new PortAllocator('127.0.0.1', mkdtempSync(path.join(tmpdir(), 'ports-')));
  const seen = new Set<number>();
  for (let i = 0; i < 50; i++) {
    const p = await a.next();
    assert.ok(p >= 20_000 && p < ephemeral, `${p} is below the ephemeral range (${ephemeral})`);
    assert.ok(!seen.has(p), `${p} handed out twice`);
    seen.add(p);
  }
  a.release();
});

test('two allocators on one machine never hand out the same port', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ports-'));
  const a = new PortAllocator('127.0.0.1', dir);
  const b = new PortAllocator('127.0.0.1', dir);
  const fromA = new Set<number>();
  for (let i = 0; i < 300; i++) fromA.add(await a.next());
  for (let i = 0; i < 300; i++) assert.ok(!fromA.has(await b.next()));
  a.release();
  b.release();
});
