import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { H1Pool } from './h1-pool.ts';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  error?: string;
}

function send(
  pool: H1Pool,
  method: string,
  path: string,
  headers: OutgoingHttpHeaders = {},
  body?: Buffer[],
): Promise<Reply> {
  return new Promise((resolve) => {
    const reply: Reply = { status: 0, headers: {}, body: '' };
    const req = pool.request(method, path, { host: 'app', ...headers }, body !== undefined, {
      onHead(status, h) {
        reply.status = status;
        reply.headers = h;
      },
      onData(c) {
        reply.body += c.toString();
        return true;
      },
      onEnd: () => resolve(reply),
      onError(err, stage) {
        reply.error = `${stage}: ${err.message}`;
        resolve(reply);
      },
    });
    if (body) {
      for (const c of body) req.write(c);
      req.end();
    }
  });
}

/** A server that answers each request with the given raw bytes, written in `pieces`. */
async function rawServer(answer: (request: string) => string, pieces = 1): Promise<net.Server> {
  const server = net.createServer((socket) => {
    let seen = '';
    socket.on('data', (c) => {
      seen += c.toString('latin1');
      while (seen.includes('\r\n\r\n')) {
        const end = seen.indexOf('\r\n\r\n') + 4;
        const req = seen.slice(0, end);
        seen = seen.slice(end);
        const out = Buffer.from(answer(req), 'latin1');
        const size = Math.ceil(out.length / pieces);
        for (let i = 0; i < out.length; i += size) socket.write(out.subarray(i, i + size));
        if (/connection: close/i.test(answer(req))) socket.end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

const portOf = (s: net.Server) => (s.address() as AddressInfo).port;

describe('H1Pool: HTTP/1.1 upstream on raw keep-alive sockets', () => {
  let app: http.Server;
  let pool: H1Pool;
  const sockets = new Set<string>();

  before(async () => {
    app = http.createServer((req, res) => {
      sockets.add(`${req.socket.remotePort}`);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        if (req.url === '/chunked') {
          res.writeHead(200, { 'set-cookie': ['a=1', 'b=2'], 'x-dup': ['x', 'y'] });
          res.write('hello ');
          setTimeout(() => res.end('world'), 5);
          return;
        }
        if (req.url === '/empty') {
          res.writeHead(204);
          res.end();
          return;
        }
        if (req.url === '/cached') {
          res.writeHead(304, { etag: '"1"' });
          res.end();
          return;
        }
        res.writeHead(200, {
          'content-type': 'text/plain',
          'content-length': Buffer.byteLength(`${req.method} ${body}`),
        });
        res.end(req.method === 'HEAD' ? undefined : `${req.method} ${body}`);
      });
    });
    app.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    pool = H1Pool.loopback((app.address() as AddressInfo).port);
  });

  after(() => {
    pool.close();
    app.closeAllConnections();
    app.close();
  });

  test('content-length bodies, and one connection reused for requests in sequence', async () => {
    sockets.clear();
    for (let i = 0; i < 5; i++) {
      const r = await send(pool, 'GET', `/n${i}`);
      assert.equal(r.status, 200);
      assert.equal(r.body, 'GET ');
      assert.equal(r.headers['content-type'], 'text/plain');
    }
    assert.equal(sockets.size, 1);
  });

  test('chunked responses; set-cookie stays a list, other repeated headers are joined', async () => {
    const r = await send(pool, 'GET', '/chunked');
    assert.equal(r.body, 'hello world');
    assert.deepEqual(r.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(r.headers['x-dup'], 'x, y');
  });

  test('HEAD, 204 and 304 have no body whatever their headers say', async () => {
    const head = await send(pool, 'HEAD', '/');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '5');
    assert.equal(head.body, '');
    assert.equal((await send(pool, 'GET', '/empty')).status, 204);
    assert.equal((await send(pool, 'GET', '/cached')).status, 304);
    assert.equal((await send(pool, 'GET', '/after')).body, 'GET ', 'the connection is still in step');
  });

  test('request bodies: with content-length as is, without it chunked', async () => {
    const fixed = await send(pool, 'POST', '/', { 'content-length': '6' }, [
      Buffer.from('abc'),
      Buffer.from('def'),
    ]);
    assert.equal(fixed.body, 'POST abcdef');
    const streamed = await send(pool, 'PUT', '/', {}, [Buffer.from('x'.repeat(70_000)), Buffer.from('yz')]);
    assert.equal(streamed.body, `PUT ${'x'.repeat(70_000)}yz`);
  });

  test('responses split into single bytes, 1xx interim responses, chunk extensions and trailers', async () => {
    const server = await rawServer(
      () =>
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n' +
        'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n' +
        '3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\ntrailer: t\r\n\r\n',
      1000,
    );
    const p = H1Pool.loopback(portOf(server));
    const r = await send(p, 'GET', '/');
    assert.equal(r.status, 201);
    assert.equal(r.headers['x-a'], '1');
    assert.equal(r.body, 'abcde');
    assert.equal((await send(p, 'GET', '/')).body, 'abcde');
    p.close();
    server.close();
  });

  test('a body delimited by the connection closing', async () => {
    const server = await rawServer(() => 'HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end');
    const p = H1Pool.loopback(portOf(server));
    const r = await send(p, 'GET', '/');
    assert.equal(r.error, undefined);
    assert.equal(r.body, 'until the end');
    p.close();
    server.close();
  });

  test('errors: refused, malformed status line, reset mid-body', async () => {
    const closed = await rawServer(() => '');
    const port = portOf(closed);
    closed.close();
    await new Promise((r) => setTimeout(r, 20));
    const refused = await send(H1Pool.loopback(port), 'GET', '/');
    assert.match(refused.error ?? '', /^connect: .*ECONNREFUSED/);

    const garbage = await rawServer(() => 'SMTP ready\r\n\r\n');
    const g = await send(H1Pool.loopback(portOf(garbage)), 'GET', '/');
    assert.match(g.error ?? '', /^sent: malformed response status line/);
    garbage.close();

    const short = await rawServer(
      () => 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\nabc',
    );
    const s = await send(H1Pool.loopback(portOf(short)), 'GET', '/');
    assert.match(s.error ?? '', /^response: the upstream closed the connection mid-response/);
    assert.equal(s.body, 'abc');
    short.close();
  });

  test('a response header that would split or corrupt the response to the client is refused', async () => {
    for (const bad of ['x-a: one\ntwo', 'x-a: nul\0', ' folded: x', 'bad name: x', 'x-a: \r']) {
      const server = await rawServer(() => `HTTP/1.1 200 OK\r\n${bad}\r\ncontent-length: 0\r\n\r\n`);
      const r = await send(H1Pool.loopback(portOf(server)), 'GET', '/');
      assert.match(r.error ?? '', /^sent: malformed response head/, JSON.stringify(bad));
      server.close();
    }
    const fine = await rawServer(() => 'HTTP/1.1 200 OK\r\nx-a:\t tabbed \xe9 \r\ncontent-length: 0\r\n\r\n');
    const pool = H1Pool.loopback(portOf(fine));
    const ok = await send(pool, 'GET', '/');
    assert.equal(ok.headers['x-a'], 'tabbed \xe9');
    pool.close();
    fine.close();
  });
});
