import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bodyLength, type Downstream, ResponseBody } from './downstream.ts';

/** Records what reaches the client. */
function client(): { down: Downstream; calls: string[] } {
  const calls: string[] = [];
  const down = {
    write: (c: Buffer) => {
      calls.push(`write ${c}`);
      return true;
    },
    end: (c?: Buffer) => {
      calls.push(c ? `end ${c}` : 'end');
    },
  } as unknown as Downstream;
  return { down, calls };
}

test('ResponseBody: the last chunk of a known length ends the response in the same call', () => {
  const { down, calls } = client();
  const body = new ResponseBody(down, 6, () => {});
  body.data(Buffer.from('abc'));
  body.data(Buffer.from('def'));
  body.data(Buffer.from('extra'));
  body.end();
  assert.deepEqual(calls, ['write abc', 'end def']);
});

test('ResponseBody: an empty or unframed body ends exactly once, at the end', () => {
  for (const length of [0, -1]) {
    const { down, calls } = client();
    const body = new ResponseBody(down, length, () => {});
    if (length < 0) body.data(Buffer.from('x'));
    body.end();
    body.end();
    assert.deepEqual(calls, length < 0 ? ['write x', 'end'] : ['end']);
  }
});

test('bodyLength: HEAD, 1xx, 204 and 304 carry no body; a bad content-length is unframed', () => {
  assert.equal(bodyLength('GET', 200, { 'content-length': '12' }), 12);
  assert.equal(bodyLength('HEAD', 200, { 'content-length': '12' }), -1);
  assert.equal(bodyLength('GET', 204, {}), -1);
  assert.equal(bodyLength('GET', 304, { 'content-length': '12' }), -1);
  assert.equal(bodyLength('GET', 200, { 'content-length': 'x' }), -1);
  assert.equal(bodyLength('GET', 200, {}), -1);
});
