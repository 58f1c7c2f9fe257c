import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  GrpcExchange,
  grpcMessage,
  grpcTimeoutMs,
  grpcToHttpStatus,
  isGrpc,
  MessageCounter,
} from './grpc.ts';

/** Length-prefixed messages of the given sizes. */
function frames(sizes: number[]): Buffer {
  return Buffer.concat(
    sizes.map((n) => {
      const f = Buffer.alloc(5 + n, 0x5a);
      f[0] = 0;
      f.writeUInt32BE(n, 1);
      return f;
    }),
  );
}

test('isGrpc: application/grpc and its +format and parameter forms, not gRPC-Web or others', () => {
  const table: [string | undefined, boolean][] = [
    ['application/grpc', true],
    ['application/grpc+proto', true],
    ['application/grpc;charset=utf-8', true],
    ['application/grpc-web', false],
    ['application/grpc-web+proto', false],
    ['application/grpcx', false],
    ['application/json', false],
    [undefined, false],
  ];
  for (const [ct, want] of table)
    assert.equal(isGrpc(ct === undefined ? {} : { 'content-type': ct }), want, ct);
});

test('MessageCounter counts messages however the stream is cut', () => {
  const sizes = [0, 1, 300, 0, 70_000, 4];
  const bytes = frames(sizes);
  for (const cut of [1, 2, 3, 5, 7, 64, 16_384, bytes.length]) {
    const c = new MessageCounter();
    for (let i = 0; i < bytes.length; i += cut) c.count(bytes.subarray(i, i + cut));
    assert.equal(c.messages, sizes.length, `chunks of ${cut}`);
  }
});

test('MessageCounter: a length of 2^31 or more is skipped, not read as negative', () => {
  const c = new MessageCounter();
  c.count(Buffer.from([0, 0x80, 0, 0, 0]));
  c.count(Buffer.alloc(1000));
  assert.equal(c.messages, 1, 'the following bytes are the message body');
});

test('MessageCounter counts a message from its first prefix byte', () => {
  const c = new MessageCounter();
  c.count(Buffer.from([0, 0, 0]));
  assert.equal(c.messages, 1);
});

test('grpcTimeoutMs reads every unit and refuses malformed values', () => {
  assert.equal(grpcTimeoutMs('200m'), 200);
  assert.equal(grpcTimeoutMs('2S'), 2000);
  assert.equal(grpcTimeoutMs('1M'), 60_000);
  assert.equal(grpcTimeoutMs('1H'), 3_600_000);
  assert.equal(grpcTimeoutMs('1500u'), 2);
  assert.equal(grpcTimeoutMs('10n'), 1, 'at least a millisecond');
  for (const bad of ['', 'm', '10', '10x', '-1m', '123456789m', '1.5S'])
    assert.equal(grpcTimeoutMs(bad), undefined, bad);
});

test('the status label: trailers or head first, else what the HTTP status maps to', () => {
  const g = new GrpcExchange();
  assert.equal(g.statusLabel(0), '', 'no response at all');
  assert.equal(g.statusLabel(503), '14');
  assert.equal(g.statusLabel(404), '12');
  assert.equal(g.statusLabel(200), '2');
  g.status = '0';
  assert.equal(g.statusLabel(200), '0');
});

test('grpcMessage percent-encodes what is not printable ASCII, and %', () => {
  assert.equal(grpcMessage('no route\n'), 'no route');
  assert.equal(grpcMessage('100% über'), '100%25 %C3%BCber');
});

test('grpcToHttpStatus: Envoy’s table, 500 for what is not a code', () => {
  assert.equal(grpcToHttpStatus('0'), 200);
  assert.equal(grpcToHttpStatus('14'), 503);
  assert.equal(grpcToHttpStatus('4'), 504);
  assert.equal(grpcToHttpStatus('12'), 501);
  assert.equal(grpcToHttpStatus('16'), 401);
  assert.equal(grpcToHttpStatus('17'), 500);
  assert.equal(grpcToHttpStatus('x'), 500);
});
