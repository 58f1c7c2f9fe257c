// The cluster layer's choice of upstream protocol, and HTTP/2 keepalive pings.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import type { Cluster, ConnectionPool } from '../../compile/snapshot.ts';
import { balance, type Transports } from './balance.ts';
import { ClusterRuntime } from './cluster.ts';
import { type Dispatch, upstreamRequest } from './dispatch.ts';
import { keepAlive } from './peer-pool.ts';
import { UpstreamState } from './state.ts';

function protocolSent(pool: ConnectionPool | undefined, downstream: 'HTTP/1.1' | 'HTTP/2'): string {
  let used = '';
  const answer =
    (name: string): Dispatch =>
    (_req, h) => {
      used = name;
      h.onHead(200, {});
      h.onEnd();
      return { resume() {}, abort() {} };
    };
  const t: Transports = { 'HTTP/1.1': answer('HTTP/1.1'), 'HTTP/2': answer('HTTP/2') };
  const cluster: Cluster = {
    name: 'c',
    direction: 'outbound',
    port: 80,
    lb: { type: 'ROUND_ROBIN' },
    tls: { mode: 'ISTIO_MUTUAL', sni: 'x', identities: [] },
    ...(pool ? { connectionPool: pool } : {}),
    endpoints: [{ address: '10.0.0.1', port: 15006, healthy: true }],
  };
  const c = new ClusterRuntime(cluster, new UpstreamState());
  const h = { onHead() {}, onData: () => true, onEnd() {}, onError() {} };
  balance(c, 'test', [t])(upstreamRequest(downstream, 'GET', '/', 'svc', {}, undefined), h);
  return used;
}

test("the upstream protocol follows the client's unless the pool says otherwise", () => {
  assert.equal(protocolSent(undefined, 'HTTP/2'), 'HTTP/2');
  assert.equal(protocolSent(undefined, 'HTTP/1.1'), 'HTTP/1.1');
  assert.equal(protocolSent({ h2Upgrade: true }, 'HTTP/1.1'), 'HTTP/2', 'h2UpgradePolicy UPGRADE');
  assert.equal(protocolSent({ http1Only: true }, 'HTTP/2'), 'HTTP/1.1', 'useClientProtocol false');
});

test('http2KeepAlive pings the peer every interval', async () => {
  let pings = 0;
  const server = http2.createServer();
  server.on('session', (s) => s.on('ping', () => pings++));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  keepAlive(session, 30, 1000);
  // Three pings arrive (at a 30 ms interval), however busy the machine.
  for (let i = 0; i < 100 && pings < 3; i++) await new Promise((r) => setTimeout(r, 50));
  session.close();
  server.close();
  assert.ok(pings >= 3, `${pings} pings`);
});
