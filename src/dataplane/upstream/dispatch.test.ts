import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { Duplex, Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { RetryPolicy } from '../../compile/snapshot.ts';
import { type Dispatch, type Layer, type UpstreamFailure, upstreamRequest } from './dispatch.ts';
import { H1Pool } from './h1-pool.ts';
import { h1Transport } from './h1-transport.ts';
import { h2Transport } from './h2-transport.ts';
import { replayStale } from './replay.ts';
import { RetryConditions, withRetries } from './retry.ts';
import { ClusterState } from './state.ts';

interface Seen {
  heads: number[];
  body: string;
  failure?: UpstreamFailure;
}

/** Sends one request through `dispatch` and records every handler call: what a downstream would get. */
function send(dispatch: Dispatch, protocol: 'HTTP/1.1' | 'HTTP/2', method = 'GET'): Promise<Seen> {
  return new Promise((resolve) => {
    const seen: Seen = { heads: [], body: '' };
    const req = upstreamRequest(protocol, method, '/', 'app', { 'x-test': '1' }, undefined);
    dispatch(req, {
      onHead: (status) => {
        seen.heads.push(status);
      },
      onData: (c) => {
        seen.body += c.toString();
        return true;
      },
      onEnd: () => resolve(seen),
      onError: (f) => {
        seen.failure = f;
        resolve(seen);
      },
    });
  });
}

/** The retry layer over one transport: a 503 is dropped and the request sent again. */
const policy: RetryPolicy = {
  attempts: 2,
  on: ['retriable-status-codes'],
  statusCodes: [503],
  backoffMs: 1,
  ignorePreviousHosts: false,
  origin: 'test',
};
const againOn503: Layer = withRetries({
  policy,
  conditions: new RetryConditions(policy),
  state: new ClusterState('test'),
  maxRetries: undefined,
  budget: undefined,
});

describe('upstream dispatch and its layers', { timeout: 20_000 }, () => {
  let h1: http.Server;
  let h2: http2.Http2Server;
  let h1Requests = 0;
  let h2Requests = 0;
  const portOf = (s: net.Server | http2.Http2Server) => (s.address() as AddressInfo).port;

  before(async () => {
    // Every other request fails with a 503 whose body must never reach the client.
    h1 = http.createServer((_req, res) => {
      h1Requests++;
      if (h1Requests % 2 === 1) res.writeHead(503).end('first attempt failed');
      else res.writeHead(200).end(`answer ${h1Requests}`);
    });
    h2 = http2.createServer();
    h2.on('stream', (stream) => {
      h2Requests++;
      if (h2Requests % 2 === 1) {
        stream.respond({ ':status': 503 });
        stream.end('first attempt failed');
      } else {
        stream.respond({ ':status': 200 });
        stream.end(`answer ${h2Requests}`);
      }
    });
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  });
  after(() => {
    h1.close();
    h2.close();
  });

  test('HTTP/1.1: a layer holds the failed attempt’s head and dispatches again; nothing of it goes downstream', async () => {
    const pool = H1Pool.loopback(portOf(h1));
    const seen = await send(againOn503(h1Transport(() => pool, 'app')), 'HTTP/1.1');
    assert.deepEqual(seen.heads, [200]);
    assert.equal(seen.body, 'answer 2');
    assert.equal(h1Requests, 2);
    pool.close();
  });

  test('HTTP/2: the same layer over a multiplexed session', async () => {
    const session = http2.connect(`http://127.0.0.1:${portOf(h2)}`);
    const seen = await send(againOn503(h2Transport(() => session, 'app')), 'HTTP/2');
    assert.deepEqual(seen.heads, [200]);
    assert.equal(seen.body, 'answer 2');
    assert.equal(h2Requests, 2);
    session.close();
  });

  test('HTTP/2: a head and body that arrive in one read reach the handler in order', async () => {
    // A minimal HTTP/2 server that answers stream 1 with HEADERS (:status 200, HPACK static index 8)
    // and DATA in a single write. Node emits the head a tick after it pushes the body: a transport
    // listening to the body early sees it first.
    const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3);
      h[3] = type;
      h[4] = flags;
      h.writeUInt32BE(stream, 5);
      return Buffer.concat([h, payload]);
    };
    const raw = net.createServer((socket) => {
      let seen = Buffer.alloc(0);
      let preface = true;
      let answered = false;
      socket.write(frame(4, 0, 0, Buffer.alloc(0)));
      socket.on('data', (c) => {
        seen = Buffer.concat([seen, c]);
        // The client's 24-byte preface, then frames: ACK its SETTINGS, answer its first HEADERS.
        if (preface) {
          if (seen.length < 24) return;
          seen = seen.subarray(24);
          preface = false;
        }
        while (seen.length >= 9 && seen.length >= 9 + seen.readUIntBE(0, 3)) {
          const len = seen.readUIntBE(0, 3);
          const type = seen[3];
          const flags = seen[4];
          if (type === 4 && !(flags & 1)) socket.write(frame(4, 1, 0, Buffer.alloc(0)));
          if (type === 1 && !answered) {
            answered = true;
            socket.write(
              Buffer.concat([frame(1, 4, 1, Buffer.from([0x88])), frame(0, 1, 1, Buffer.from('in order'))]),
            );
          }
          seen = seen.subarray(9 + len);
        }
      });
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    // Through a JavaScript stream, as over TLS: every frame of a read is handled in one go.
    const session = http2.connect(`http://127.0.0.1:${portOf(raw)}`, {
      createConnection: () => {
        const socket = net.connect(portOf(raw), '127.0.0.1');
        const duplex = new Duplex({
          read() {},
          write(chunk, _enc, done) {
            socket.write(chunk, done);
          },
          destroy(err, done) {
            socket.destroy();
            done(err);
          },
        });
        socket.on('data', (c) => duplex.push(c));
        socket.on('close', () => duplex.destroy());
        return duplex;
      },
    });
    const order: string[] = [];
    await new Promise<void>((resolve) => {
      h2Transport(() => session, 'raw')(upstreamRequest('HTTP/2', 'GET', '/', 'app', {}, undefined), {
        onHead: (status) => {
          order.push(`head ${status}`);
        },
        onData: (c) => {
          order.push(`data ${c}`);
          return true;
        },
        onEnd: () => resolve(),
        onError: (f) => {
          order.push(`error ${f.message}`);
          resolve();
        },
      });
    });
    assert.deepEqual(order, ['head 200', 'data in order']);
    session.destroy();
    raw.close();
  });

  test('replay: a bodiless request on a keep-alive connection the app closed meanwhile goes again on a new one', async () => {
    // The app answers the first request on each connection and drops the connection on the second,
    // as a server does whose keep-alive timeout fires just as the request arrives.
    let connections = 0;
    const server = net.createServer((socket) => {
      connections++;
      let n = 0;
      socket.on('data', () => {
        if (++n === 1) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        else socket.destroy();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const pool = H1Pool.loopback(portOf(server));
    const dispatch = replayStale(h1Transport(() => pool, 'app'));
    assert.equal((await send(dispatch, 'HTTP/1.1')).body, 'ok');
    const again = await send(dispatch, 'HTTP/1.1');
    assert.equal(again.failure, undefined);
    assert.equal(again.body, 'ok');
    assert.equal(connections, 2);

    // With a body nothing is replayed: the failure reaches the caller.
    const post = await new Promise<UpstreamFailure | undefined>((resolve) => {
      const req = upstreamRequest(
        'HTTP/1.1',
        'POST',
        '/',
        'app',
        { 'content-length': '1' },
        Readable.from([Buffer.from('x')]),
      );
      dispatch(req, {
        onHead() {},
        onData: () => true,
        onEnd: () => resolve(undefined),
        onError: resolve,
      });
    });
    assert.equal(post?.kind, 'reset');
    assert.equal(post?.stale, true);
    pool.close();
    server.close();
  });
});
