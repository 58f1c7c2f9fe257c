import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeDocuments } from './decode.ts';

const value = (text: string) => {
  const r = decodeDocuments(text, 'x.yaml');
  assert.deepEqual(r.issues, []);
  return r.documents[0].value;
};

describe('decode: YAML as Kubernetes (go-yaml) reads it', () => {
  test("Istio's ServiceEntry example: IPv6 addresses in a flow list are strings", () => {
    // From istio.io's ServiceEntry reference (addresses of an entry with resolution NONE).
    const doc = value(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external-svc
spec:
  hosts:
  - example.com
  addresses: [1.2.3.4, 001:db8::]
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: NONE
`) as { spec: { addresses: unknown } };
    assert.deepEqual(doc.spec.addresses, ['1.2.3.4', '001:db8::']);
  });

  test('a colon before a flow indicator stays in the scalar; before a blank it is a key', () => {
    assert.deepEqual(value('a: [::1, fe80::, "x", ::, 1::2:, 2001:db8::/32]'), {
      a: ['::1', 'fe80::', 'x', '::', '1::2:', '2001:db8::/32'],
    });
    assert.deepEqual(value('a: [k:, b]'), { a: ['k:', 'b'] });
    assert.deepEqual(value('a: [k: v, k2: ]'), { a: [{ k: 'v' }, { k2: null }] });
    assert.deepEqual(value('a: [[fe80::], {x: [::]}]'), { a: [['fe80::'], { x: ['::'] }] });
  });

  test('positions still point at the items', () => {
    const r = decodeDocuments('spec:\n  addresses: [1.2.3.4, 001:db8::]\n');
    assert.deepEqual(r.documents[0].positions.get('spec.addresses[1]'), { line: 2, column: 24 });
  });
});
