import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import tls from 'node:tls';
import { parseClientHello } from './client-hello.ts';

/** The first bytes a real Node TLS client sends, collected by a plain TCP server. */
async function helloOf(opts: tls.ConnectionOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const server = net.createServer((s) => {
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (parseClientHello(Buffer.concat(chunks)).state !== 'partial') s.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const client = tls.connect({ host: '127.0.0.1', port, ...opts });
  await new Promise((r) => client.on('error', r).on('close', r));
  server.close();
  return Buffer.concat(chunks);
}

test('the SNI of a real ClientHello, lower-cased; none when the client sends none', async () => {
  const named = await helloOf({ servername: 'WWW.Example.com' });
  assert.deepEqual(parseClientHello(named), { state: 'complete', sni: 'www.example.com' });
  assert.deepEqual(parseClientHello(await helloOf({})), { state: 'complete', sni: undefined });
});

test('a hello in pieces: partial until whole, also when its handshake spans records', async () => {
  const hello = await helloOf({ servername: 'a.example.com' });
  for (const cut of [1, 5, 9, hello.length - 1])
    assert.equal(parseClientHello(hello.subarray(0, cut)).state, 'partial');
  // The same handshake message split over two records (RFC 8446 §5.1 allows it).
  const body = hello.subarray(5);
  const record = (b: Buffer) => Buffer.concat([Buffer.from([0x16, 3, 1, b.length >> 8, b.length & 0xff]), b]);
  const split = Buffer.concat([record(body.subarray(0, 10)), record(body.subarray(10))]);
  assert.deepEqual(parseClientHello(split), { state: 'complete', sni: 'a.example.com' });
});

test('what is not a ClientHello is invalid, not waited for', () => {
  assert.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n')).state, 'invalid');
  // A handshake record whose message is a ServerHello (type 2).
  assert.equal(parseClientHello(Buffer.from([0x16, 3, 3, 0, 4, 2, 0, 0, 0])).state, 'invalid');
  // A ClientHello claiming more extension bytes than it has.
  const head = [0x16, 3, 1, 0, 47, 1, 0, 0, 43, 3, 3];
  const rest = [0, 0, 2, 0, 0x2f, 1, 0, 0, 9];
  const bad = Buffer.from([...head, ...Array(32).fill(0), ...rest]);
  assert.equal(parseClientHello(bad).state, 'invalid');
});
