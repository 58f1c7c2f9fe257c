import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import { clientHello, httpStart } from './sniff.ts';

/** The first bytes a real TLS client sends, with `servername` (or none). */
async function helloBytes(servername?: string): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const got = new Promise<Buffer>((resolve) =>
    server.once('connection', (s) =>
      s.once('data', (b: Buffer) => {
        resolve(b);
        s.destroy();
      }),
    ),
  );
  const c = tls.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, servername });
  c.on('error', () => {});
  const b = await got;
  c.destroy();
  server.close();
  return b;
}

test("a ClientHello's SNI is read, lower-cased, from a real client's first bytes, in any split", async () => {
  const b = await helloBytes('API.Example.com');
  assert.deepEqual(clientHello(b), { sni: 'api.example.com' });
  for (const n of [0, 1, 4, 5, 40, b.length - 1]) assert.equal(clientHello(b.subarray(0, n)), 'more', `${n}`);
  // Node sends no SNI for an IP address.
  assert.deepEqual(clientHello(await helloBytes()), { sni: undefined });
});

test('what is not a ClientHello is said at once', () => {
  assert.equal(clientHello(Buffer.from('GET / HTTP/1.1\r\n')), 'not-tls');
  assert.equal(clientHello(Buffer.from([0x16, 0x01, 0x00])), 'not-tls');
  assert.equal(clientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0])), 'not-tls');
});

test('HTTP/1.x and the HTTP/2 preface are told from other bytes', () => {
  const cases: [string, ReturnType<typeof httpStart>][] = [
    ['GET / HTTP/1.1\r\n', 'http1'],
    ['M-SEARCH * HTTP/1.1', 'http1'],
    ['GE', 'more'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'h2'],
    ['PRI * HT', 'more'],
    ['PRIX', 'more'], // could still be a method
    ['PRIX /', 'http1'],
    ['SET k v\r\n', 'http1'], // a Redis command reads as a request line: name Redis ports `redis`
    ['ping\r\n', 'other'],
    [' GET', 'other'],
    ['\x00\x00\x01', 'other'],
    ['ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'other'],
  ];
  for (const [text, want] of cases) assert.equal(httpStart(Buffer.from(text)), want, JSON.stringify(text));
});
