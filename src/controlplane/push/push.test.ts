// The push server over a real HTTP/2 connection (cleartext here: the mTLS door in front of it is
// tested with the control plane): one snapshot in flight per proxy, the latest sent with the answer,
// registry bursts pushed once, deltas once the proxy has ACKed and whole snapshots when it cannot
// use them.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Resource } from '../../api/resource.ts';
import type { ProxyNode, ProxySnapshot } from '../../compile/snapshot.ts';
import { SILENT } from '../../lib/log.ts';
import {
  applyDelta,
  type ControlPlaneMessage,
  DELTA_BASE_MISMATCH,
  LineBuffer,
  type ProxyMessage,
  PUSH_PATH,
} from '../../push/protocol.ts';
import { Registry } from '../registry/registry.ts';
import { MemoryStore } from '../store/memory.ts';
import { PushServer } from './push.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function node(id: string, app = 'a'): ProxyNode {
  return {
    id,
    role: 'sidecar',
    workload: `${app}-v1`,
    namespace: 'default',
    serviceAccount: app,
    labels: { app },
    address: '127.0.0.1',
    inboundPort: 15006,
    ports: [{ name: 'http', port: 9080 }],
    healthy: true,
  };
}

const service: Resource = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'a', namespace: 'default' },
  spec: { selector: { app: 'a' }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
};

function timeoutVs(timeout: string): Resource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'a', namespace: 'default' },
    spec: { hosts: ['a'], http: [{ timeout, route: [{ destination: { host: 'a' } }] }] },
  };
}

/**
 * A proxy speaking the protocol by hand, so the test decides when it answers. It rebuilds deltas
 * against the snapshot it ACKed last, as the agent does.
 */
class Peer {
  /** Every snapshot received, deltas rebuilt. */
  readonly received: ProxySnapshot[] = [];
  /** How each came: its message type and size on the wire. */
  readonly messages: { type: ControlPlaneMessage['type']; bytes: number }[] = [];
  private running?: ProxySnapshot;
  private readonly stream: http2.ClientHttp2Stream;
  private readonly session: http2.ClientHttp2Session;
  private waiting?: () => void;

  constructor(url: string, n: ProxyNode, running?: string) {
    this.session = http2.connect(url);
    this.stream = this.session.request({ ':method': 'POST', ':path': PUSH_PATH, 'x-proxy': n.id });
    const lines = new LineBuffer();
    this.stream.setEncoding('utf8');
    this.stream.on('data', (chunk: string) => {
      for (const line of lines.push(chunk)) {
        const msg = JSON.parse(line) as ControlPlaneMessage;
        if (msg.type === 'trust') continue;
        this.messages.push({ type: msg.type, bytes: Buffer.byteLength(line) });
        this.received.push(msg.type === 'snapshot' ? msg.snapshot : applyDelta(this.running, msg.delta));
        this.waiting?.();
      }
    });
    this.send({ type: 'hello', node: n, running });
  }

  send(msg: ProxyMessage): void {
    if (msg.type === 'ack') this.running = this.received.find((s) => s.version === msg.version);
    this.stream.write(`${JSON.stringify(msg)}\n`);
  }

  async next(count: number, timeoutMs = 2000): Promise<ProxySnapshot> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      assert.ok(Date.now() < deadline, `snapshot #${count} did not arrive (have ${this.received.length})`);
      await new Promise<void>((r) => {
        this.waiting = r;
        setTimeout(r, 20);
      });
    }
    return this.received[count - 1];
  }

  close(): void {
    this.session.destroy();
  }
}

const timeoutOf = (s: ProxySnapshot) =>
  s.routeTables[0].virtualHosts.find((v) => v.name.startsWith('a.default.'))!.routes[0].action;

describe('push server', () => {
  const store = new MemoryStore();
  const registry = new Registry({ log: SILENT });
  const push = new PushServer({
    store,
    registry,
    mesh: { trustDomain: 'cluster.local' },
    log: SILENT,
    registryQuietMs: 60,
    registryMaxDelayMs: 400,
  });
  const server = http2.createServer();
  // The door in front (tested with the control plane) finds the platform's record from the proxy's token.
  server.on('stream', (stream, headers) => {
    const { healthy: _, ...record } = node(headers['x-proxy'] as string);
    push.accept(stream, 'spiffe://cluster.local/ns/default/sa/a', record);
  });
  let url = '';

  before(async () => {
    await store.commit([{ type: 'put', resource: service }]);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    push.close();
    server.close();
  });

  test('a proxy has one snapshot in flight; the latest goes out with its answer, nothing in between', async () => {
    const peer = new Peer(url, node('a-0'));
    try {
      const first = await peer.next(1);
      // Three changes while the proxy has not answered: none of them is sent yet.
      for (const t of ['1s', '2s', '3s']) {
        await store.commit([{ type: 'put', resource: timeoutVs(t) }]);
        await sleep(30);
      }
      await sleep(100);
      assert.equal(peer.received.length, 1);
      assert.equal(push.status()[0].status, 'STALE');
      peer.send({ type: 'ack', version: first.version });
      const latest = await peer.next(2);
      const action = timeoutOf(latest);
      assert.equal(action.type === 'forward' && action.timeoutMs, 3000);
      assert.equal(latest.revision, store.revision);
      await sleep(100);
      assert.equal(peer.received.length, 2, 'the intermediate configs were never sent');
      peer.send({ type: 'ack', version: latest.version });
      await sleep(50);
      const [st] = push.status();
      assert.equal(st.status, 'SYNCED');
      assert.equal(st.acked?.revision, store.revision);
      assert.equal(push.lastConvergence?.revision, store.revision);
      assert.equal(push.snapshotOf('a-0')?.version, latest.version);
    } finally {
      peer.close();
      await sleep(50);
    }
  });

  test('a NACK also releases the next snapshot', async () => {
    const peer = new Peer(url, node('a-1'));
    try {
      const first = await peer.next(1);
      await store.commit([{ type: 'put', resource: timeoutVs('4s') }]);
      await sleep(80);
      assert.equal(peer.received.length, 1);
      peer.send({ type: 'nack', version: first.version, reason: 'no' });
      const second = await peer.next(2);
      assert.notEqual(second.version, first.version);
      assert.equal(push.status().find((s) => s.id === 'a-1')?.status, 'STALE');
    } finally {
      peer.close();
      await sleep(50);
    }
  });

  test('after an ACK a delta; after a delta base mismatch NACK the whole snapshot; after a reconnect too', async () => {
    await store.commit([
      { type: 'put', resource: { ...service, metadata: { name: 'b', namespace: 'default' } } },
    ]);
    let peer = new Peer(url, node('a-3'));
    try {
      const first = await peer.next(1);
      assert.equal(peer.messages[0].type, 'snapshot', 'the first snapshot on a stream is whole');
      peer.send({ type: 'ack', version: first.version });
      await store.commit([{ type: 'put', resource: timeoutVs('5s') }]);
      const second = await peer.next(2);
      assert.equal(peer.messages[1].type, 'delta');
      assert.ok(
        peer.messages[1].bytes < peer.messages[0].bytes / 2,
        'the delta leaves out what did not change',
      );
      assert.equal((timeoutOf(second) as { timeoutMs: number }).timeoutMs, 5000);
      assert.deepEqual(
        second.routeTables[0].virtualHosts.map((v) => v.name),
        first.routeTables[0].virtualHosts.map((v) => v.name),
      );

      // A proxy that cannot rebuild it gets the same snapshot whole, then deltas again after its ACK.
      peer.send({ type: 'nack', version: second.version, reason: `${DELTA_BASE_MISMATCH}: lost it` });
      const whole = await peer.next(3);
      assert.equal(peer.messages[2].type, 'snapshot');
      assert.deepEqual(whole, second);
      assert.equal(push.status().find((s) => s.id === 'a-3')?.nack, undefined, 'not a NACK of the config');
      peer.send({ type: 'ack', version: whole.version });
      await store.commit([{ type: 'put', resource: timeoutVs('6s') }]);
      const third = await peer.next(4);
      assert.equal(peer.messages[3].type, 'delta');
      peer.send({ type: 'ack', version: third.version });
      await sleep(50);
      assert.equal(push.snapshotOf('a-3')?.version, third.version);

      // A new stream starts whole, even if the proxy says it runs the latest version.
      peer.close();
      await sleep(50);
      peer = new Peer(url, node('a-3'), third.version);
      const again = await peer.next(1);
      assert.equal(peer.messages[0].type, 'snapshot');
      assert.equal(again.version, third.version);
    } finally {
      peer.close();
      await sleep(50);
    }
  });

  test('a burst of registry changes is pushed once, after it has been SILENT', async () => {
    const peer = new Peer(url, node('a-2'));
    try {
      let n = 1;
      peer.send({ type: 'ack', version: (await peer.next(n)).version });
      await sleep(150);
      n = peer.received.length;
      // Five replicas join 20 ms apart: each changes every proxy's endpoints.
      for (let i = 0; i < 5; i++) {
        registry.upsert(node(`burst-${i}`), {});
        await sleep(20);
      }
      const snap = await peer.next(n + 1);
      peer.send({ type: 'ack', version: snap.version });
      await sleep(150);
      assert.equal(peer.received.length, n + 1, 'one push for the whole burst');
      const endpoints = snap.clusters.find(
        (c) => c.name === 'outbound|9080||a.default.svc.cluster.local',
      )!.endpoints;
      assert.equal(endpoints.length, 6);
    } finally {
      peer.close();
      await sleep(50);
    }
  });
});
