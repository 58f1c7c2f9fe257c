import assert from 'node:assert/strict';
import { test } from 'node:test';
import { portProtocol } from './app-protocol.ts';

test("portProtocol: appProtocol first, then the name's prefix, as Istio selects", () => {
  const table: [string | undefined, string | undefined, string | undefined][] = [
    ['grpc', undefined, 'GRPC'],
    ['grpc-api', undefined, 'GRPC'],
    ['GRPC', undefined, 'GRPC'],
    ['grpc-web', undefined, 'GRPC-WEB'],
    ['grpc-web-edge', undefined, 'GRPC-WEB'],
    ['http2-x', undefined, 'HTTP2'],
    ['http', undefined, 'HTTP'],
    ['web', undefined, undefined],
    [undefined, undefined, undefined],
    ['http', 'grpc', 'GRPC'],
    ['grpc', 'HTTP', 'HTTP'],
    ['web', 'kubernetes.io/h2c', 'HTTP2'],
    ['grpc', 'unknown-thing', 'GRPC'],
  ];
  for (const [name, app, want] of table) assert.equal(portProtocol(name, app), want, `${name} ${app}`);
});
