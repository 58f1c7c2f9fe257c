import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Cluster, ProxySnapshot } from '../../compile/snapshot.ts';
import { DnsResolver } from './dns.ts';

const cluster = (name: string, mode: 'STRICT' | 'LOGICAL' | undefined, addresses: string[]): Cluster => ({
  name,
  direction: 'outbound',
  port: 80,
  lb: { type: 'ROUND_ROBIN' },
  tls: { mode: 'DISABLE' },
  ...(mode ? { dns: { mode, refreshMs: 1000 } } : {}),
  endpoints: addresses.map((address) => ({ address, port: 8080, healthy: true })),
});

const snapshot = (clusters: Cluster[]) => ({ clusters }) as unknown as ProxySnapshot;
const addresses = (s: ProxySnapshot, name: string) =>
  s.clusters.find((c) => c.name === name)!.endpoints.map((e) => e.address);

test('DNS clusters: STRICT takes every address, LOGICAL the first; IPs and other clusters are kept', async () => {
  const answers: Record<string, string[]> = { 'a.example': ['192.0.2.1', '192.0.2.2'] };
  const dns = new DnsResolver(
    () => {},
    async (n) => answers[n] ?? Promise.reject(new Error(`ENOTFOUND ${n}`)),
  );
  const s = await dns.resolve(
    snapshot([
      cluster('strict', 'STRICT', ['a.example', '192.0.2.9']),
      cluster('logical', 'LOGICAL', ['a.example']),
      cluster('missing', 'STRICT', ['nowhere.example']),
      cluster('static', undefined, ['a.example']),
    ]),
  );
  assert.deepEqual(addresses(s, 'strict'), ['192.0.2.1', '192.0.2.2', '192.0.2.9']);
  assert.deepEqual(addresses(s, 'logical'), ['192.0.2.1']);
  assert.deepEqual(addresses(s, 'missing'), []);
  assert.deepEqual(addresses(s, 'static'), ['a.example']);
  dns.close();
});

test('a refresh that finds other addresses applies again; a failed one keeps the last good', async () => {
  let answer: string[] | undefined = ['192.0.2.1'];
  let changed!: () => void;
  const refreshed = new Promise<void>((r) => {
    changed = r;
  });
  const dns = new DnsResolver(
    () => changed(),
    async () => answer ?? Promise.reject(new Error('SERVFAIL')),
  );
  const input = snapshot([cluster('c', 'STRICT', ['a.example'])]);
  assert.deepEqual(addresses(await dns.resolve(input), 'c'), ['192.0.2.1']);
  answer = ['192.0.2.7', '192.0.2.8'];
  await refreshed;
  assert.deepEqual(addresses(await dns.resolve(input), 'c'), ['192.0.2.7', '192.0.2.8']);
  answer = undefined;
  assert.deepEqual(addresses(await dns.resolve(input), 'c'), ['192.0.2.7', '192.0.2.8']);
  dns.close();
});
