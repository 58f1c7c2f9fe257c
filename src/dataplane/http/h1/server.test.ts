import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Downstream } from '../downstream.ts';
import { H1Server, headersObject } from './server.ts';

type Handler = (down: Downstream, tunnel: string | undefined) => void;

/** An H1Server on a real socket; each test sets the handler. */
function harness(opts: { tunnels: boolean; idleTimeoutMs?: number; delayedCloseMs?: number }) {
  const h = {
    handler: ((down) => down.respond(200, {}, 'ok')) as Handler,
    server: undefined as unknown as H1Server,
    rejected: [] as string[],
  };
  h.server = new H1Server((down, _socket, tunnel) => h.handler(down, tunnel), {
    ...opts,
    onReject: (r) => h.rejected.push(`${r.status} ${r.code}`),
  });
  const listener = net.createServer((socket) => h.server.serve(socket));
  return {
    h,
    start: () =>
      new Promise<number>((resolve) =>
        listener.listen(0, '127.0.0.1', () => resolve((listener.address() as AddressInfo).port)),
      ),
    stop: () => {
      h.server.closeAllConnections();
      h.server.close();
      return new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}

/** Writes `parts` (with `gapMs` between them) and returns all bytes until the server closes. */
function exchange(
  port: number,
  parts: string[],
  opts: { gapMs?: number; halfClose?: boolean; timeoutMs?: number } = {},
) {
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      got += d;
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(got));
    const timer = setTimeout(() => {
      socket.destroy();
    }, opts.timeoutMs ?? 3000);
    socket.on('close', () => clearTimeout(timer));
    let i = 0;
    const next = () => {
      if (i < parts.length) {
        socket.write(parts[i++], 'latin1');
        setTimeout(next, opts.gapMs ?? 0);
      } else if (opts.halfClose) socket.end();
    };
    socket.on('connect', next);
  });
}

function echo(down: Downstream): void {
  const chunks: Buffer[] = [];
  down.body.on('data', (c: Buffer) => chunks.push(c));
  down.body.on('end', () => {
    const body = Buffer.concat(chunks);
    down.respond(200, { 'x-method': down.method, 'x-target': down.target }, body);
  });
}

describe('H1Server', () => {
  const { h, start, stop } = harness({ tunnels: true, idleTimeoutMs: 300, delayedCloseMs: 100 });
  let port = 0;
  before(async () => {
    port = await start();
  });
  after(stop);

  it('serves keep-alive requests in order on one connection, with lengths and chunked bodies', async () => {
    h.handler = (down) => {
      if (down.target === '/chunked') {
        down.respond(200, { 'content-type': 'text/plain' });
        down.write(Buffer.from('hello '));
        setTimeout(() => down.end(Buffer.from('world')), 5);
      } else down.respond(201, { 'x-a': ['1', '2'] }, 'created');
    };
    const out = await exchange(
      port,
      [
        'GET /one HTTP/1.1\r\nHost: a\r\n\r\n',
        'GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n',
        'GET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      ],
      { gapMs: 20 },
    );
    const responses = out.split(/(?=HTTP\/1\.1 )/);
    assert.equal(responses.length, 3);
    assert.match(
      responses[0],
      /^HTTP\/1\.1 201 Created\r\nx-a: 1\r\nx-a: 2\r\ncontent-length: 7\r\ndate: .+\r\n\r\ncreated$/,
    );
    assert.match(
      responses[1],
      /^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\ntransfer-encoding: chunked\r\n/,
    );
    assert.ok(responses[1].endsWith('\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n'), responses[1]);
    assert.match(responses[2], /connection: close\r\n/);
  });

  it('answers pipelined requests in order, the next dispatched only once the previous is answered', async () => {
    const order: string[] = [];
    h.handler = (down) => {
      order.push(`start ${down.target}`);
      setTimeout(
        () => {
          order.push(`end ${down.target}`);
          down.respond(200, {}, down.target);
        },
        down.target === '/slow' ? 30 : 0,
      );
    };
    const out = await exchange(port, [
      'GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]);
    assert.deepEqual(order, ['start /slow', 'end /slow', 'start /fast', 'end /fast']);
    assert.ok(out.indexOf('/slow') < out.indexOf('/fast'));
  });

  it('streams a chunked request body to the handler and the next request after it', async () => {
    h.handler = echo;
    const out = await exchange(
      port,
      [
        'POST /e HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
        '6\r\n world\r\n0\r\n\r\n',
        'POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc',
      ],
      { gapMs: 10 },
    );
    assert.match(out, /x-target: \/e\r\ncontent-length: 11\r\n.*\r\n\r\nhello world/s);
    assert.match(out, /x-target: \/f\r\ncontent-length: 3\r\n.*\r\n\r\nabc$/s);
  });

  it('reads and drops the body of a request answered without reading it, then serves the next one', async () => {
    // Answered later, once the unread body has filled the buffer and paused the socket.
    h.handler = (down) => setTimeout(() => down.respond(404, {}, `nothing at ${down.target}`), 50);
    const body = 'x'.repeat(256 * 1024);
    const out = await exchange(port, [
      `POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      'GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]);
    assert.match(out, /nothing at \/big.*nothing at \/after$/s);
  });

  it('closes a connection whose answered request never finishes its body', async () => {
    h.handler = (down) => down.respond(200, {}, 'early');
    const started = Date.now();
    const out = await exchange(port, ['POST /trickle HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab']);
    assert.match(out, /\r\n\r\nearly$/);
    assert.ok(Date.now() - started >= 250, 'closed by the idle timeout, not at once');
    assert.ok(Date.now() - started < 2500, 'closed, not left open until the client gave up');
  });

  it('sends 100 Continue when the client expects it', async () => {
    h.handler = echo;
    const out = await exchange(
      port,
      [
        'PUT /c HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n',
        'hi',
      ],
      { gapMs: 20 },
    );
    assert.match(out, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n.*\r\n\r\nhi$/s);
  });

  it('closes an HTTP/1.0 connection after its response; a body without length ends with the connection', async () => {
    h.handler = (down) => {
      down.respond(200, {});
      down.end(Buffer.from('until close'));
    };
    const out = await exchange(port, ['GET / HTTP/1.0\r\n\r\n']);
    assert.match(out, /^HTTP\/1\.1 200 OK\r\nconnection: close\r\n/);
    assert.ok(out.endsWith('\r\n\r\nuntil close'));
    h.handler = (down) => down.respond(200, {}, 'kept');
    const keep = await exchange(port, ['GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'], {
      timeoutMs: 150,
    });
    assert.match(keep, /^HTTP\/1\.1 200 OK\r\ncontent-length: 4\r\nconnection: keep-alive\r\n.*kept$/s);
  });

  it('sends no body for HEAD, 204 and 304', async () => {
    h.handler = (down) => {
      if (down.method === 'HEAD') down.respond(200, { 'content-length': 5 }, '');
      else down.respond(204, {}, '');
    };
    const out = await exchange(port, [
      'HEAD / HTTP/1.1\r\nHost: a\r\n\r\nDELETE / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]);
    const [head, noContent] = out.split(/(?=HTTP\/1\.1 )/);
    assert.match(head, /content-length: 5\r\n.*\r\n\r\n$/s);
    assert.match(noContent, /^HTTP\/1\.1 204 No Content\r\n(?!.*transfer-encoding).*\r\n\r\n$/s);
  });

  it('refuses malformed and ambiguous requests with a status, a TRL_ code, and a closed connection', async () => {
    let called = 0;
    h.handler = (down) => {
      called++;
      down.respond(200, {}, 'no');
    };
    const cases: [string, number][] = [
      ['POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\n\r\n', 400],
      ['GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505],
    ];
    h.rejected.length = 0;
    for (const [request, status] of cases) {
      const out = await exchange(port, [request]);
      assert.match(
        out,
        new RegExp(
          `^HTTP/1\\.1 ${status} .*x-trellis-response-flags: DPE\\r\\n.*connection: close\\r\\n\\r\\nTRL_HTTP_\\w+: .+\\n$`,
          's',
        ),
        request,
      );
    }
    assert.equal(called, 0);
    assert.deepEqual(h.rejected, [
      '400 TRL_HTTP_CL_TE_CONFLICT',
      '400 TRL_HTTP_INVALID_HEADER_TOKEN',
      '400 TRL_HTTP_MISSING_HOST',
      '505 TRL_HTTP_VERSION_NOT_SUPPORTED',
    ]);
  });

  it('a websocket upgrade answered 101 becomes a tunnel: bytes both ways, half-close each way', async () => {
    const got: Buffer[] = [];
    h.handler = (down) => {
      assert.equal(down.upgrade, 'websocket');
      assert.equal(down.hasBody, false);
      down.body.on('data', (c: Buffer) => {
        got.push(c);
        down.write(Buffer.from(`echo:${c}`));
      });
      // The client half-closed: the tunnel says so, and the server may still answer and end.
      down.body.on('end', () => down.end(Buffer.from('bye')));
      down.respond(101, { 'x-app': '1', 'content-length': '0', upgrade: 'ignored' });
    };
    // The bytes after the head (even in its segment) wait for the 101 and are the tunnel's first.
    const out = await exchange(
      port,
      ['GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: WebSocket\r\n\r\nearly', 'later'],
      { gapMs: 50, halfClose: true },
    );
    assert.equal(
      out,
      'HTTP/1.1 101 Switching Protocols\r\nx-app: 1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n' +
        'echo:earlyecho:laterbye',
    );
    assert.equal(Buffer.concat(got).toString(), 'earlylater');
  });

  it('an upgrade answered otherwise is an ordinary response, and the connection closes after it', async () => {
    const seen: string[] = [];
    h.handler = (down) => {
      seen.push(down.target);
      down.respond(403, {}, 'no');
    };
    const out = await exchange(port, [
      'GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n' +
        'GET /next HTTP/1.1\r\nHost: a\r\n\r\n',
    ]);
    assert.match(out, /^HTTP\/1\.1 403 Forbidden\r\n.*connection: close\r\n.*\r\n\r\nno$/s);
    assert.deepEqual(seen, ['/ws'], 'what followed the head was never read as a request');
  });

  it('h2c is not offered (a plain request); other upgrades are refused; one with a body would smuggle', async () => {
    const seen: string[] = [];
    h.handler = (down) => {
      seen.push(`${down.target} ${down.upgrade}`);
      echo(down);
    };
    const h2c = await exchange(port, [
      'POST /h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n' +
        'HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 4\r\n\r\nbody' +
        'GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]);
    assert.match(h2c, /^HTTP\/1\.1 200 OK\r\n.*bodyHTTP\/1\.1 200 OK\r\n/s);
    assert.deepEqual(seen, ['/h2c undefined', '/next undefined']);
    const other = await exchange(port, [
      'GET /x HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket, foo\r\n\r\n',
    ]);
    assert.match(other, /^HTTP\/1\.1 403 Forbidden\r\n.*TRL_HTTP_UPGRADE_NOT_SUPPORTED/s);
    const inner = 'GET /admin HTTP/1.1\r\nHost: a\r\n\r\n';
    const smuggle = await exchange(port, [
      `POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`,
    ]);
    assert.match(smuggle, /^HTTP\/1\.1 400 Bad Request\r\n.*TRL_HTTP_UPGRADE_WITH_BODY/s);
    assert.deepEqual(seen, ['/h2c undefined', '/next undefined'], 'neither reached the handler');
  });

  it('tunnels CONNECT and serves the requests inside with the tunnel target', async () => {
    const seen: (string | undefined)[] = [];
    h.handler = (down, tunnel) => {
      seen.push(tunnel);
      down.respond(200, {}, down.target);
    };
    const out = await exchange(port, [
      'CONNECT reviews:9080 HTTP/1.1\r\nHost: reviews:9080\r\n\r\nGET /inside HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n',
    ]);
    assert.match(out, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 200 OK\r\n.*\/inside$/s);
    assert.deepEqual(seen, ['reviews:9080']);
  });

  it('answers the request of a client that half-closed after sending it', async () => {
    h.handler = (down) => setTimeout(() => down.respond(200, {}, 'late'), 20);
    const out = await exchange(port, ['GET / HTTP/1.1\r\nHost: a\r\n\r\n'], { halfClose: true });
    assert.match(out, /\r\n\r\nlate$/);
  });

  it('closes idle connections and times out a head that never completes', async () => {
    h.handler = (down) => down.respond(200, {}, 'ok');
    const started = Date.now();
    const idle = await exchange(port, ['GET / HTTP/1.1\r\nHost: a\r\n\r\n']);
    assert.match(idle, /\r\n\r\nok$/);
    assert.ok(Date.now() - started >= 250, 'closed by the idle timeout');
    const slow = await exchange(port, ['GET / HTTP/1.1\r\nHo']);
    assert.match(slow, /^HTTP\/1\.1 408 Request Timeout\r\n.*TRL_HTTP_REQUEST_TIMEOUT/s);
  });

  it('lets go of a connection it closed (400, 408, connection: close) though the client never closes', async () => {
    h.handler = (down) => down.respond(200, {}, 'ok');
    for (const request of [
      'GET / HTTP/1.1\r\nHost: a:@evil\r\n\r\n',
      'GET / HTTP/1.1\r\nHo',
      'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]) {
      // allowHalfOpen: the client reads our FIN and keeps its own side open, as a hostile one would.
      const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      socket.write(request);
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => {
        got += d;
      });
      await new Promise((r) => socket.once('end', r));
      assert.match(got, /^HTTP\/1\.1 (400|408|200) /);
      const since = Date.now();
      while (h.server.connections.size > 0 && Date.now() - since < 2000)
        await new Promise((r) => setTimeout(r, 10));
      assert.equal(h.server.connections.size, 0, `released after ${JSON.stringify(request)}`);
      // The server's socket is gone: writing to it is answered with a reset.
      const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        socket.once('error', resolve);
        socket.once('close', () => resolve(undefined));
        const poke = setInterval(() => socket.write('x'), 10);
        socket.once('close', () => clearInterval(poke));
      });
      assert.match(String(error?.code), /ECONNRESET|EPIPE/);
      socket.destroy();
    }
  });

  it('refuses a response header that would split the response', async () => {
    let error: Error | undefined;
    h.handler = (down) => {
      try {
        down.respond(200, { 'x-bad': 'a\r\nset-cookie: evil' }, 'x');
      } catch (err) {
        error = err as Error;
        down.respond(500, {}, 'refused');
      }
    };
    const out = await exchange(port, ['GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n']);
    assert.match(error?.message ?? '', /invalid character in response header x-bad/);
    assert.match(out, /^HTTP\/1\.1 500 .*refused$/s);
    assert.doesNotMatch(out, /evil/);
  });

  it('closes idle connections on drain, and lets a request in progress finish with connection: close', async () => {
    let release = () => {};
    h.handler = (down) => {
      release = () => down.respond(200, {}, 'done');
    };
    const busy = exchange(port, ['GET / HTTP/1.1\r\nHost: a\r\n\r\n']);
    const idle = exchange(port, []);
    await new Promise((r) => setTimeout(r, 50));
    h.server.closing = true;
    h.server.closeIdleConnections();
    assert.equal(await idle, '');
    release();
    assert.match(await busy, /connection: close\r\n.*done$/s);
    h.server.closing = false;
  });
});

describe('headersObject', () => {
  it('builds the headers object Node would: lower-case names, joined duplicates, first of single ones', () => {
    assert.deepEqual(
      headersObject([
        'Host',
        'a',
        'Accept',
        'x',
        'accept',
        'y',
        'Cookie',
        'c=1',
        'cookie',
        'd=2',
        'Set-Cookie',
        's=1',
        'set-cookie',
        's=2',
        'User-Agent',
        'u1',
        'user-agent',
        'u2',
      ]),
      { host: 'a', accept: 'x, y', cookie: 'c=1; d=2', 'set-cookie': ['s=1', 's=2'], 'user-agent': 'u1' },
    );
  });
});
