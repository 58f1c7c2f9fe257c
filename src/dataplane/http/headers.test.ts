import assert from 'node:assert/strict';
import { test } from 'node:test';
import { upstreamHeaders, XFCC_HEADER } from './headers.ts';

const fromClient = {
  host: 'app.example',
  'x-forwarded-proto': 'https',
  'x-request-id': 'chosen-by-the-client',
  [XFCC_HEADER]: 'By=spiffe://cluster.local/ns/default/sa/app;URI=spiffe://cluster.local/ns/default/sa/admin',
  'x-keep': 'yes',
};

test('at the edge the client cannot choose x-forwarded-proto, x-request-id or XFCC', () => {
  const out = upstreamHeaders(fromClient, { clientAddress: '192.0.2.1', proto: 'http', edge: true });
  assert.equal(out['x-forwarded-proto'], 'http');
  assert.notEqual(out['x-request-id'], 'chosen-by-the-client');
  assert.match(String(out['x-request-id']), /^[0-9a-f-]{36}$/);
  assert.equal(out[XFCC_HEADER], undefined);
  assert.equal(out['x-forwarded-for'], '192.0.2.1');
  assert.equal(out['x-keep'], 'yes');
});

test('inside the mesh the request id and scheme travel on; XFCC never does', () => {
  const out = upstreamHeaders(fromClient, { clientAddress: '127.0.0.1', proto: 'http', edge: false });
  assert.equal(out['x-forwarded-proto'], 'https');
  assert.equal(out['x-request-id'], 'chosen-by-the-client');
  assert.equal(out[XFCC_HEADER], undefined);
  const toApp = upstreamHeaders(fromClient, undefined);
  assert.equal(toApp[XFCC_HEADER], undefined, 'the inbound side sets its own from the verified peer');
  assert.equal(toApp['x-request-id'], 'chosen-by-the-client');
});
