import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Authorization } from './snapshot.ts';
import { tcpAuthorization } from './tcp-authorization.ts';

test('on TCP an ALLOW rule with an HTTP-only field is dropped, the policy kept (Istio checkError)', () => {
  const a: Authorization = {
    allow: [
      {
        name: 'default/a',
        rules: [
          { to: [{ methods: ['GET'] }] },
          { from: [{ principals: ['cluster.local/ns/default/sa/client'] }], to: [{ ports: [9000] }] },
          { from: [{ requestPrincipals: ['*'] }] },
          { when: [{ key: 'request.headers[x-a]', values: ['1'] }] },
          { when: [{ key: 'request.auth.claims[group]', values: ['x'] }] },
          { to: [{ ports: [9000] }, { hosts: ['a'] }] },
        ],
      },
      { name: 'default/b', rules: [{ to: [{ paths: ['/x'] }] }] },
    ],
  };
  assert.deepEqual(tcpAuthorization(a), {
    allow: [
      {
        name: 'default/a',
        rules: [{ from: [{ principals: ['cluster.local/ns/default/sa/client'] }], to: [{ ports: [9000] }] }],
      },
      // No rule left: it matches nothing, and being there still denies what no other ALLOW allows.
      { name: 'default/b', rules: [] },
    ],
  });
});

test('on TCP a DENY or AUDIT rule loses its HTTP-only conditions and gets wider', () => {
  const a: Authorization = {
    deny: [
      {
        name: 'default/d',
        dryRun: true,
        rules: [
          { to: [{ methods: ['POST'] }] },
          {
            from: [{ namespaces: ['bad'], notRequestPrincipals: ['*'] }],
            to: [{ ports: [1], paths: ['/a'] }],
          },
          {
            when: [
              { key: 'request.headers[x]', values: ['y'] },
              { key: 'source.ip', values: ['10.0.0.0/8'] },
            ],
          },
          { when: [{ key: 'request.auth.principal', values: ['a/b'] }] },
          { from: [{ principals: ['x'] }] },
        ],
      },
    ],
    audit: [{ name: 'default/au', rules: [{ to: [{ hosts: ['h'] }] }] }],
  };
  assert.deepEqual(tcpAuthorization(a), {
    deny: [
      {
        name: 'default/d',
        dryRun: true,
        rules: [
          // Only HTTP fields: every connection.
          { to: [{}] },
          { from: [{ namespaces: ['bad'] }], to: [{ ports: [1] }] },
          { when: [{ key: 'source.ip', values: ['10.0.0.0/8'] }] },
          {},
          { from: [{ principals: ['x'] }] },
        ],
      },
    ],
    audit: [{ name: 'default/au', rules: [{ to: [{}] }] }],
  });
});

test('a policy set without HTTP-only fields is the same object on TCP', () => {
  const a: Authorization = {
    allow: [
      {
        name: 'n/p',
        rules: [{ from: [{ ipBlocks: ['127.0.0.1'] }], when: [{ key: 'destination.port', values: ['1'] }] }],
      },
    ],
  };
  assert.equal(tcpAuthorization(a), a);
});
