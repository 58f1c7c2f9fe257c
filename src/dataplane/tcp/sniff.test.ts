import assert from 'node:assert/strict';
import { test } from 'node:test';
import { httpStart } from './sniff.ts';

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
