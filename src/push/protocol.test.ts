import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineBuffer } from './protocol.ts';

test('LineBuffer yields whole lines across chunk boundaries', () => {
  const b = new LineBuffer();
  assert.deepEqual(b.push('{"a":'), []);
  assert.deepEqual(b.push('1}\n{"b"'), ['{"a":1}']);
  assert.deepEqual(b.push(':2}\n\n{"c":3}\n'), ['{"b":2}', '{"c":3}']);
  assert.deepEqual(b.push(''), []);
});

test('LineBuffer joins a long line from many chunks once, and keeps what follows it', () => {
  const b = new LineBuffer();
  const line = 'x'.repeat(1 << 20);
  const chunks = line.match(/.{1,16384}/g) ?? [];
  for (const c of chunks) assert.deepEqual(b.push(c), []);
  assert.deepEqual(b.push('\n{"next":'), [line]);
  assert.deepEqual(b.push('1}\n'), ['{"next":1}']);
});
