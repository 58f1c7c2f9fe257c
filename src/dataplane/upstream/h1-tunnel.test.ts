// The upgrade path of the HTTP/1.1 transport, on real sockets: a 101 turns the attempt into a tunnel
// on a connection of its own, both directions half-close independently, it is cut when idle, and the
// timeout and retry layers above leave an established tunnel alone.
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { RetryPolicy } from '../../compile/snapshot.ts';
import { type Dispatch, type UpstreamFailure, upstreamRequest } from './dispatch.ts';
import { H1Pool } from './h1-pool.ts';
import { h1Transport } from './h1-transport.ts';
import { RetryConditions, withRetries } from './retry.ts';
import { UpstreamState } from './state.ts';
import { withTimeout } from './timeout.ts';

/** What the test app does with a request head: `101` echoes the tunnel, any other status answers. */
interface App {
  server: net.Server;
  port: number;
  connections: number;
  heads: string[];
  /** Server sockets of the tunnels, to end or watch. */
  tunnels: net.Socket[];
  sockets: Set<net.Socket>;
}

async function app(answer: (head: string) => string): Promise<App> {
  const a: App = {
    server: net.createServer(),
    port: 0,
    connections: 0,
    heads: [],
    tunnels: [],
    sockets: new Set(),
  };
  a.server.on('connection', (socket) => {
    a.connections++;
    a.sockets.add(socket);
    socket.allowHalfOpen = true;
    let seen = '';
    const onData = (c: Buffer) => {
      seen += c.toString('latin1');
      const end = seen.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = seen.slice(0, end + 4);
      seen = seen.slice(end + 4);
      a.heads.push(head);
      const out = answer(head);
      socket.write(out);
      if (!out.startsWith('HTTP/1.1 101')) return;
      socket.off('data', onData);
      a.tunnels.push(socket);
      if (seen) socket.write(`echo:${seen}`);
      socket.on('data', (d: Buffer) => socket.writableEnded || socket.write(`echo:${d}`));
      socket.on('end', () => socket.end('server-bye'));
    };
    socket.on('data', onData);
  });
  await new Promise<void>((r) => a.server.listen(0, '127.0.0.1', r));
  a.port = (a.server.address() as AddressInfo).port;
  return a;
}

const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';

interface Outcome {
  status: number;
  data: string;
  ended: Promise<void>;
  failed: Promise<UpstreamFailure>;
  head: Promise<number>;
}

function open(d: Dispatch, path = '/ws', body = new PassThrough()): { out: Outcome; body: PassThrough } {
  let endNow!: () => void;
  let failNow!: (f: UpstreamFailure) => void;
  let headNow!: (s: number) => void;
  const out: Outcome = {
    status: 0,
    data: '',
    ended: new Promise((r) => (endNow = r)),
    failed: new Promise((r) => (failNow = r)),
    head: new Promise((r) => (headNow = r)),
  };
  const req = upstreamRequest('HTTP/1.1', 'GET', path, 'app', {}, body, '', 'websocket');
  d(req, {
    onHead(status) {
      out.status = status;
      headNow(status);
    },
    onData(c) {
      out.data += c.toString();
      return true;
    },
    onEnd: () => endNow(),
    onError: (f) => failNow(f),
  });
  return { out, body };
}

const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
};

describe('HTTP/1.1 upgrades upstream', () => {
  let a: App;
  let pool: H1Pool;
  let d: Dispatch;
  before(async () => {
    a = await app((head) =>
      head.startsWith('GET /refuse')
        ? 'HTTP/1.1 426 Upgrade Required\r\ncontent-length: 2\r\n\r\nno'
        : head.startsWith('GET /slow')
          ? ''
          : head.includes('upgrade: websocket')
            ? SWITCH
            : 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok',
    );
    pool = new H1Pool(() => net.connect({ host: '127.0.0.1', port: a.port }), 64, {
      tunnelIdleTimeoutMs: 300,
    });
    d = h1Transport(() => pool, 'app');
  });
  after(() => {
    pool.close();
    for (const s of a.sockets) s.destroy();
    a.server.close();
  });

  test('asks with Connection and Upgrade, sends nothing until the 101, then carries bytes both ways', async () => {
    const { out, body } = open(d);
    body.write('early');
    assert.equal(await out.head, 101);
    await until('the early bytes went after the 101', () => out.data === 'echo:early');
    assert.match(a.heads.at(-1)!, /\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n$/);
    assert.doesNotMatch(a.heads.at(-1)!, /transfer-encoding|content-length/);
    body.write('more');
    await until('more came back', () => out.data === 'echo:earlyecho:more');
    // The client half-closes: the app still answers, then ends its side.
    body.end();
    await out.ended;
    assert.equal(out.data, 'echo:earlyecho:moreserver-bye');
  });

  test('the upstream half-closes first: the client may still send', async () => {
    const { out, body } = open(d);
    await out.head;
    const server = a.tunnels.at(-1)!;
    server.removeAllListeners('end');
    const got: string[] = [];
    server.on('data', (c: Buffer) => got.push(c.toString()));
    server.end('last');
    await out.ended;
    body.write('after');
    await until('the app still reads', () => got.join('').includes('after'));
    body.end();
  });

  test('a tunnel has a connection of its own: never back in the pool', async () => {
    const before = a.connections;
    const first = open(d);
    await first.out.head;
    const second = open(d);
    await second.out.head;
    assert.equal(a.connections, before + 2);
    first.body.end();
    await first.out.ended;
    // A plain request after the tunnel ended does not get its connection.
    await new Promise<void>((resolve, reject) => {
      pool.request('GET', '/plain', { host: 'app' }, false, {
        onHead: () => {},
        onData: () => true,
        onEnd: resolve,
        onError: reject,
      });
    });
    assert.equal(a.connections, before + 3);
    second.body.end();
    await second.out.ended;
  });

  test('a refused upgrade is an ordinary answer, and its connection is not reused', async () => {
    pool.close();
    const before = a.connections;
    const { out } = open(d, '/refuse');
    assert.equal(await out.head, 426);
    await out.ended;
    assert.equal(out.data, 'no');
    const again = open(d, '/refuse');
    await again.out.ended;
    assert.equal(a.connections, before + 2);
  });

  test('a tunnel with no bytes either way for the idle timeout is cut: SI after the head', async () => {
    const { out, body } = open(d);
    await out.head;
    body.write('x');
    const f = await out.failed;
    assert.equal(f.kind, 'idle');
    assert.equal(f.afterHead, true);
  });

  test('the route timeout bounds the handshake, not the tunnel; a 101 is never retried', async () => {
    const policy: RetryPolicy = {
      attempts: 3,
      on: ['5xx', 'retriable-status-codes'],
      statusCodes: [101],
      backoffMs: 1,
    } as RetryPolicy;
    const state = new UpstreamState().cluster('c');
    const stack = withTimeout(
      100,
      'route r',
    )(
      withRetries({
        policy,
        conditions: new RetryConditions(policy),
        state,
        maxRetries: undefined,
        budget: undefined,
      })(d),
    );
    const before = a.heads.length;
    const { out, body } = open(stack);
    assert.equal(await out.head, 101);
    await new Promise((r) => setTimeout(r, 200));
    body.write('still');
    await until('the tunnel outlived the route timeout', () => out.data === 'echo:still');
    assert.equal(a.heads.length, before + 1, 'one try');
    body.end();
    await out.ended;
    const slow = open(stack, '/slow');
    assert.equal((await slow.out.failed).kind, 'timeout');
  });
});
