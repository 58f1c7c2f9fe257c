import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Resource } from '../api/resource.ts';
import { SILENT } from '../lib/log.ts';
import { fetchableAddress, fetchBounded, JwksResolver } from './jwks.ts';

/** What the issuer serves, by path; a function may stall or fail. */
const routes = new Map<string, (res: http.ServerResponse) => void>();
let server: http.Server;
let base: string;
let hits: string[] = [];

const json = (body: unknown) => (res: http.ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const keys = (kid: string) => ({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid }] });

function ra(rules: unknown[]): Resource {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name: 'r', namespace: 'default' },
    spec: { jwtRules: rules },
  } as Resource;
}

function changed(resolver: JwksResolver): Promise<void> {
  return new Promise((resolve) => resolver.onChange(resolve));
}

describe('JWKS resolver', () => {
  before(async () => {
    server = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      const route = routes.get(req.url ?? '');
      if (route) route(res);
      else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('fetches, refreshes, keeps the last good keys when a refresh fails, and picks up new ones', async () => {
    hits = [];
    routes.set('/jwks', json(keys('one')));
    const resolver = new JwksResolver({ log: SILENT, refreshMs: 50, retryMs: 20 });
    try {
      let next = changed(resolver);
      resolver.sync([ra([{ issuer: 'a', jwksUri: `${base}/jwks` }])]);
      await next;
      assert.match(resolver.states.get(`${base}/jwks`)!.jwks!, /"kid":"one"/);
      // The issuer goes down: the keys stay.
      routes.set('/jwks', (res) => {
        res.writeHead(500);
        res.end();
      });
      const failed = hits.length;
      for (let i = 0; i < 100 && hits.length < failed + 2; i++) await new Promise((r) => setTimeout(r, 20));
      assert.ok(hits.length >= failed + 2, 'refreshed and retried');
      assert.match(resolver.states.get(`${base}/jwks`)!.jwks!, /"kid":"one"/);
      // Rotated: the new keys arrive with the next refresh.
      next = changed(resolver);
      routes.set('/jwks', json(keys('two')));
      await next;
      assert.match(resolver.states.get(`${base}/jwks`)!.jwks!, /"kid":"two"/);
      // A source no longer named is forgotten.
      resolver.sync([]);
      assert.equal(resolver.states.size, 0);
    } finally {
      resolver.close();
    }
  });

  test('a key set never fetched has none, with the reason; OpenID discovery finds jwks_uri', async () => {
    routes.set('/issuer/.well-known/openid-configuration', json({ jwks_uri: `${base}/discovered` }));
    routes.set('/discovered', json(keys('d')));
    routes.set('/empty', json({ keys: [] }));
    const resolver = new JwksResolver({ log: SILENT, refreshMs: 60_000 });
    try {
      const want = 3;
      let seen = 0;
      const all = new Promise<void>((resolve) =>
        resolver.onChange(() => {
          if (++seen === want) resolve();
        }),
      );
      resolver.sync([
        ra([
          { issuer: 'down', jwksUri: 'http://127.0.0.1:1/jwks' },
          { issuer: 'empty', jwksUri: `${base}/empty` },
          { issuer: `${base}/issuer` },
        ]),
      ]);
      await all;
      assert.match(resolver.states.get('http://127.0.0.1:1/jwks')!.error!, /ECONNREFUSED/);
      assert.equal(resolver.states.get('http://127.0.0.1:1/jwks')!.jwks, undefined);
      assert.match(resolver.states.get(`${base}/empty`)!.error!, /not a JSON Web Key Set with keys/);
      assert.match(resolver.states.get(`oidc:${base}/issuer`)!.jwks!, /"kid":"d"/);
    } finally {
      resolver.close();
    }
  });

  test('bounded: size, time, no redirects, no link-local or metadata addresses; loopback allowed', async () => {
    routes.set('/big', (res) => {
      res.writeHead(200);
      res.end('x'.repeat(2048));
    });
    routes.set('/stall', () => {});
    routes.set('/redirect', (res) => {
      res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
      res.end();
    });
    await assert.rejects(fetchBounded(`${base}/big`, 1000, 1024), /larger than 1024 bytes/);
    await assert.rejects(fetchBounded(`${base}/stall`, 100), /no answer within 100 ms/);
    await assert.rejects(
      fetchBounded(`${base}/redirect`, 1000),
      /answered 302 \(redirects are not followed\)/,
    );
    await assert.rejects(
      fetchBounded('http://169.254.169.254/latest/meta-data/', 1000),
      /link-local or a cloud metadata/,
    );
    await assert.rejects(fetchBounded('http://[fd00:ec2::254]/', 1000), /link-local or a cloud metadata/);
    await assert.rejects(fetchBounded('file:///etc/passwd', 1000), /only http and https/);
    assert.equal(fetchableAddress('169.254.169.254'), false);
    assert.equal(fetchableAddress('::ffff:169.254.169.254'), false);
    assert.equal(fetchableAddress('fe80::1'), false);
    assert.equal(fetchableAddress('100.100.100.200'), false);
    assert.equal(fetchableAddress('127.0.0.1'), true);
    assert.equal(fetchableAddress('::1'), true);
    assert.equal(fetchableAddress('10.0.0.1'), true);
  });
});
