import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { exportJWK, generateKeyPair, generateSecret, type JWK, SignJWT } from 'jose';
import type { JwtRule } from '../../compile/snapshot.ts';
import {
  CLOCK_SKEW_S,
  JWT_ERRORS,
  JwtError,
  TokenCache,
  type Verified,
  verifyingRule,
  verifyToken,
} from './jwt.ts';

const ISSUER = 'https://issuer.example.com';
const NOW_MS = Date.UTC(2026, 0, 1);
const NOW_S = NOW_MS / 1000;

function rule(jwks: JWK[] | undefined, extra: Partial<JwtRule> = {}): JwtRule {
  return {
    origin: 'RequestAuthentication default/jwt jwtRules[0]',
    issuer: ISSUER,
    locations: {
      headers: [{ name: 'authorization', prefix: 'Bearer ' }],
      params: ['access_token'],
      cookies: [],
    },
    ...(jwks ? { jwks: JSON.stringify({ keys: jwks }) } : { jwksError: 'not fetched' }),
    ...extra,
  };
}

async function keyFor(alg: string) {
  if (alg.startsWith('HS')) {
    const secret = await generateSecret(alg, { extractable: true });
    return { sign: secret, jwk: { ...(await exportJWK(secret)), kid: alg } };
  }
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { sign: privateKey, jwk: { ...(await exportJWK(publicKey)), kid: alg } };
}

type SignKey = Awaited<ReturnType<typeof keyFor>>['sign'];

function sign(key: SignKey, alg: string, claims: Record<string, unknown>, kid = alg): Promise<string> {
  return new SignJWT({ iss: ISSUER, sub: 'alice', iat: NOW_S, exp: NOW_S + 3600, ...claims })
    .setProtectedHeader({ alg, kid })
    .sign(key);
}

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'verified';
  } catch (err) {
    assert.ok(err instanceof JwtError, String(err));
    return `${err.status} ${err.message}`;
  }
}

describe('JWT verification', () => {
  for (const alg of [
    'RS256',
    'RS384',
    'RS512',
    'PS256',
    'PS384',
    'PS512',
    'ES256',
    'ES384',
    'ES512',
    'EdDSA',
    'HS256',
    'HS384',
    'HS512',
  ]) {
    test(`${alg}: a valid token verifies; the principal is iss/sub`, async () => {
      const k = await keyFor(alg);
      const token = await sign(k.sign, alg, { aud: ['web', 'api'], azp: 'cli', groups: ['dev'] });
      const v = await verifyToken(token, [verifyingRule(rule([k.jwk], { audiences: ['api'] }))], NOW_MS);
      assert.equal(v.auth.principal, `${ISSUER}/alice`);
      assert.deepEqual(v.auth.audiences, ['web', 'api']);
      assert.equal(v.auth.presenter, 'cli');
      assert.deepEqual(v.auth.claims.groups, ['dev']);
      assert.equal(v.validUntilMs, (NOW_S + 3600 + CLOCK_SKEW_S) * 1000);
    });
  }

  test("each failure has Envoy's reason; a wrong audience is 403, the rest 401", async () => {
    const k = await keyFor('RS256');
    const other = await keyFor('RS256');
    const rules = [verifyingRule(rule([k.jwk], { audiences: ['api'] }))];
    const check = async (token: string) => reason(verifyToken(token, rules, NOW_MS));
    const ok = { aud: 'api' };
    assert.equal(await check(await sign(k.sign, 'RS256', ok)), 'verified');
    assert.equal(
      await check(await sign(k.sign, 'RS256', { ...ok, exp: NOW_S - CLOCK_SKEW_S })),
      `401 ${JWT_ERRORS.expired}`,
    );
    assert.equal(
      await check(await sign(k.sign, 'RS256', { ...ok, exp: NOW_S - CLOCK_SKEW_S + 1 })),
      'verified',
      'within the clock skew',
    );
    assert.equal(
      await check(await sign(k.sign, 'RS256', { ...ok, nbf: NOW_S + CLOCK_SKEW_S + 1 })),
      `401 ${JWT_ERRORS.notYetValid}`,
    );
    assert.equal(await check(await sign(k.sign, 'RS256', { ...ok, nbf: NOW_S + CLOCK_SKEW_S })), 'verified');
    // Forged: the right kid and claims, signed by another key.
    assert.equal(await check(await sign(other.sign, 'RS256', ok)), `401 ${JWT_ERRORS.verification}`);
    assert.equal(await check(await sign(k.sign, 'RS256', { aud: 'web' })), `403 ${JWT_ERRORS.audience}`);
    assert.equal(await check(await sign(k.sign, 'RS256', { sub: 'x' })), `403 ${JWT_ERRORS.audience}`);
    assert.equal(
      await check(await sign(k.sign, 'RS256', { ...ok, iss: 'https://evil.example.com' })),
      `401 ${JWT_ERRORS.unknownIssuer}`,
    );
    assert.equal(await check(await sign(k.sign, 'RS256', ok, 'unknown-kid')), `401 ${JWT_ERRORS.noKey}`);
    // Tampered payload, original signature.
    const [h, , s] = (await sign(k.sign, 'RS256', ok)).split('.');
    const payload = Buffer.from(JSON.stringify({ iss: ISSUER, sub: 'admin', aud: 'api' })).toString(
      'base64url',
    );
    assert.equal(await check(`${h}.${payload}.${s}`), `401 ${JWT_ERRORS.verification}`);
  });

  test('malformed tokens are refused, never thrown past (CVE-2019-12995)', async () => {
    const rules = [verifyingRule(rule([(await keyFor('RS256')).jwk]))];
    const check = (token: string) => reason(verifyToken(token, rules, NOW_MS));
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    assert.equal(await check('abc'), `401 ${JWT_ERRORS.badFormat}`);
    assert.equal(await check('a.b.c.d'), `401 ${JWT_ERRORS.badFormat}`);
    assert.equal(await check(`${b64({ alg: 'RS256' })}.${b64({})}.`), `401 ${JWT_ERRORS.badFormat}`);
    assert.equal(await check('!!.e30.sig'), `401 ${JWT_ERRORS.headerJson}`);
    assert.equal(await check(`${b64({})}.${b64({})}.sig`), `401 ${JWT_ERRORS.badAlg}`);
    assert.equal(
      await check(`${b64({ alg: 'none' })}.${b64({ iss: ISSUER })}.sig`),
      `401 ${JWT_ERRORS.algNotImplemented}`,
    );
    assert.equal(await check(`${b64({ alg: 'RS256' })}.bm90IGpzb24.sig`), `401 ${JWT_ERRORS.payloadJson}`);
    assert.equal(await check(`${b64({ alg: 'RS256' })}.${b64([1])}.sig`), `401 ${JWT_ERRORS.payloadJson}`);
    assert.equal(
      await check(`${b64({ alg: 'RS256', kid: 'RS256' })}.${b64({ iss: ISSUER })}.AAAA`),
      `401 ${JWT_ERRORS.verification}`,
    );
  });

  test('a key set that could not be fetched refuses its issuer (fail closed)', async () => {
    const k = await keyFor('ES256');
    const token = await sign(k.sign, 'ES256', {});
    assert.equal(
      await reason(verifyToken(token, [verifyingRule(rule(undefined))], NOW_MS)),
      `401 ${JWT_ERRORS.fetch}`,
    );
    const broken = verifyingRule({ ...rule([k.jwk]), jwks: '{"keys": [{"kty": "nope"}]}' });
    assert.notEqual(await reason(verifyToken(token, [broken], NOW_MS)), 'verified');
  });

  test('a token without kid is tried against every key', async () => {
    const a = await keyFor('RS256');
    const b = await keyFor('RS256');
    const noKid = (jwk: JWK) => ({ ...jwk, kid: undefined });
    const token = await new SignJWT({ iss: ISSUER, sub: 'bob' })
      .setProtectedHeader({ alg: 'RS256' })
      .sign(b.sign);
    const v = await verifyToken(token, [verifyingRule(rule([noKid(a.jwk), noKid(b.jwk)]))], NOW_MS);
    assert.equal(v.auth.principal, `${ISSUER}/bob`);
  });

  test('the issuer picks the rule among several', async () => {
    const a = await keyFor('RS256');
    const b = await keyFor('ES256');
    const rules = [
      verifyingRule(rule([a.jwk], { issuer: 'issuer-a' })),
      verifyingRule(
        rule([b.jwk], { issuer: 'issuer-b', origin: 'RequestAuthentication default/b jwtRules[0]' }),
      ),
    ];
    const v = await verifyToken(await sign(b.sign, 'ES256', { iss: 'issuer-b' }), rules, NOW_MS);
    assert.equal(v.rule.origin, 'RequestAuthentication default/b jwtRules[0]');
    assert.equal(
      await reason(verifyToken(await sign(a.sign, 'RS256', { iss: 'issuer-b' }), rules, NOW_MS)),
      `401 ${JWT_ERRORS.noKey}`,
      "issuer-b's keys do not include a's",
    );
  });
});

describe('token cache', () => {
  const entry = (validUntilMs: number) => ({ validUntilMs }) as Verified;

  test('holds a token until it expires, and at most its bound; a token used since it was added gets a second chance', () => {
    const cache = new TokenCache(2);
    cache.set('a', entry(1000));
    cache.set('b', entry(5000));
    assert.ok(cache.get('a', 999));
    assert.equal(cache.get('a', 1000), undefined, 'expired: dropped');
    assert.equal(cache.size, 1);
    cache.set('a', entry(5000));
    cache.get('b', 0); // b is now the most recently used
    cache.set('c', entry(5000));
    assert.equal(cache.size, 2);
    assert.equal(cache.get('a', 0), undefined, 'the one not used went');
    assert.ok(cache.get('b', 0));
    assert.ok(cache.get('c', 0));
  });
});
