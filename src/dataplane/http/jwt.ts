// JWT verification for RequestAuthentication, as Envoy's jwt_authn does it: the token's issuer picks
// the rule, exp/nbf hold within Envoy's 60 s clock skew, one of the rule's audiences must be in `aud`,
// and the signature verifies with a key of the rule's key set (jose; every algorithm Envoy accepts).
// Verified tokens are cached per token until they expire, so a repeated token costs a map lookup.
// Failures carry Envoy's own reasons, which become the 401 (403 for audiences) body.
import { compactVerify, createLocalJWKSet, errors, importJWK, type JSONWebKeySet, type JWK } from 'jose';
import type { JwtRule } from '../../compile/snapshot.ts';
import type { RequestAuth } from './context.ts';

/** Envoy's `clock_skew_seconds` default. */
export const CLOCK_SKEW_S = 60;

/** Envoy's jwt_authn accepts these (HS* with `oct` keys). */
const ALGORITHMS = [
  'ES256',
  'ES384',
  'ES512',
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
];

/** Envoy's jwt_verify_lib status strings: the body of the refusal. */
export const JWT_ERRORS = {
  badFormat: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
  headerJson: 'Jwt header is an invalid JSON',
  payloadJson: 'Jwt payload is an invalid JSON',
  badAlg: 'Jwt header [alg] field is required and must be a string',
  algNotImplemented: 'Jwt header [alg] is not supported',
  unknownIssuer: 'Jwt issuer is not configured',
  expired: 'Jwt is expired',
  notYetValid: 'Jwt not yet valid',
  audience: 'Audiences in Jwt are not allowed',
  verification: 'Jwt verification fails',
  noKey: "Jwks doesn't have key to match kid or alg from Jwt",
  fetch: 'Jwks remote fetch is failed',
} as const;

export type JwtFailure = (typeof JWT_ERRORS)[keyof typeof JWT_ERRORS];

export class JwtError extends Error {
  /** Envoy answers a wrong audience with 403, every other failure with 401. */
  readonly status: number;
  /** The rule that refused it, when the issuer picked one. */
  readonly rule: JwtRule | undefined;
  constructor(reason: JwtFailure, rule?: JwtRule) {
    super(reason);
    this.status = reason === JWT_ERRORS.audience ? 403 : 401;
    this.rule = rule;
  }
}

type KeySet = ReturnType<typeof createLocalJWKSet>;
type Key = Awaited<ReturnType<KeySet>>;

/** A rule ready to verify with: its key set parsed once, when the snapshot is applied. */
export interface VerifyingRule {
  rule: JwtRule;
  /** The asymmetric keys; undefined: the key set is missing or unusable, and every token of this issuer is refused. */
  keys: KeySet | undefined;
  /** `oct` keys for HS*, which jose's key sets leave out. */
  secrets: JWK[];
}

export function verifyingRule(rule: JwtRule): VerifyingRule {
  if (rule.jwks === undefined) return { rule, keys: undefined, secrets: [] };
  try {
    const set = JSON.parse(rule.jwks) as JSONWebKeySet;
    return { rule, keys: createLocalJWKSet(set), secrets: set.keys.filter((k) => k.kty === 'oct') };
  } catch {
    return { rule, keys: undefined, secrets: [] };
  }
}

/** HS*: the `oct` keys that fit the token's kid and alg, each tried as Envoy tries keys. */
async function checkSecret(v: VerifyingRule, token: string, alg: string, kid: unknown): Promise<void> {
  const candidates = v.secrets.filter(
    (k) => (kid === undefined || k.kid === kid) && (k.alg === undefined || k.alg === alg),
  );
  if (candidates.length === 0) throw new JwtError(JWT_ERRORS.noKey, v.rule);
  for (const jwk of candidates) {
    try {
      await compactVerify(token, await importJWK(jwk, alg), { algorithms: [alg] });
      return;
    } catch {
      // not this one: the next candidate
    }
  }
  throw new JwtError(JWT_ERRORS.verification, v.rule);
}

/** A verified token: who it says the caller is, and until when (ms since the epoch) it stays valid. */
export interface Verified {
  rule: JwtRule;
  auth: RequestAuth;
  /** The payload as sent (base64url), for outputPayloadToHeader. */
  payload: string;
  validUntilMs: number;
}

function decodeJson(part: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** What can be told from the token before any key is used: its shape, issuer and time window. */
export function parseToken(token: string): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  payload: string;
} {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[2] === '') throw new JwtError(JWT_ERRORS.badFormat);
  const header = decodeJson(parts[0]);
  if (!isRecord(header)) throw new JwtError(JWT_ERRORS.headerJson);
  if (typeof header.alg !== 'string') throw new JwtError(JWT_ERRORS.badAlg);
  if (!ALGORITHMS.includes(header.alg)) throw new JwtError(JWT_ERRORS.algNotImplemented);
  const claims = decodeJson(parts[1]);
  if (!isRecord(claims)) throw new JwtError(JWT_ERRORS.payloadJson);
  return { header, claims, payload: parts[1] };
}

function audiences(claims: Record<string, unknown>): string[] {
  const aud = claims.aud;
  if (typeof aud === 'string') return [aud];
  return Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
}

/** Checks before the signature, as jwt_verify_lib orders them: time window, then audiences. */
function checkClaims(rule: JwtRule, claims: Record<string, unknown>, nowS: number): void {
  if (typeof claims.nbf === 'number' && nowS + CLOCK_SKEW_S < claims.nbf)
    throw new JwtError(JWT_ERRORS.notYetValid, rule);
  if (typeof claims.exp === 'number' && nowS - CLOCK_SKEW_S >= claims.exp)
    throw new JwtError(JWT_ERRORS.expired, rule);
  if (rule.audiences && !audiences(claims).some((a) => rule.audiences!.includes(a)))
    throw new JwtError(JWT_ERRORS.audience, rule);
}

async function checkSignature(
  v: VerifyingRule,
  token: string,
  header: Record<string, unknown>,
): Promise<void> {
  if (!v.keys) throw new JwtError(v.rule.jwks === undefined ? JWT_ERRORS.fetch : JWT_ERRORS.noKey, v.rule);
  const alg = header.alg as string;
  if (alg.startsWith('HS')) return checkSecret(v, token, alg, header.kid);
  try {
    await compactVerify(token, v.keys, { algorithms: ALGORITHMS });
  } catch (err) {
    if (err instanceof errors.JWKSMultipleMatchingKeys) {
      // No `kid`, several candidate keys: Envoy tries each.
      for await (const key of err as unknown as AsyncIterable<Key>) {
        try {
          await compactVerify(token, key, { algorithms: ALGORITHMS });
          return;
        } catch {
          // not this one: the next candidate
        }
      }
      throw new JwtError(JWT_ERRORS.verification, v.rule);
    }
    if (err instanceof errors.JWKSNoMatchingKey) throw new JwtError(JWT_ERRORS.noKey, v.rule);
    throw new JwtError(JWT_ERRORS.verification, v.rule);
  }
}

export function principalOf(claims: Record<string, unknown>): RequestAuth {
  const iss = typeof claims.iss === 'string' ? claims.iss : '';
  const sub = typeof claims.sub === 'string' ? claims.sub : '';
  const auth: RequestAuth = { principal: `${iss}/${sub}`, audiences: audiences(claims), claims };
  if (typeof claims.azp === 'string') auth.presenter = claims.azp;
  return auth;
}

/** Verifies `token` against the rules its location allows; throws a JwtError with Envoy's reason. */
export async function verifyToken(
  token: string,
  candidates: readonly VerifyingRule[],
  nowMs: number,
): Promise<Verified> {
  const { header, claims, payload } = parseToken(token);
  const v = candidates.find((c) => c.rule.issuer === claims.iss);
  if (!v) throw new JwtError(JWT_ERRORS.unknownIssuer);
  checkClaims(v.rule, claims, Math.floor(nowMs / 1000));
  await checkSignature(v, token, header);
  const validUntilMs =
    typeof claims.exp === 'number' ? (claims.exp + CLOCK_SKEW_S) * 1000 : Number.POSITIVE_INFINITY;
  return { rule: v.rule, auth: principalOf(claims), payload, validUntilMs };
}

/**
 * Verified tokens, bounded, with second-chance (CLOCK) eviction: a hit only marks its entry used, so
 * the hot path does no map writes; when full, the oldest entry not used since it was last passed
 * over goes.
 */
export class TokenCache {
  private readonly max: number;
  private readonly entries = new Map<string, { v: Verified; used: boolean }>();

  constructor(max: number) {
    this.max = max;
  }

  get size(): number {
    return this.entries.size;
  }

  /** A verified token still within its validity, or undefined (an expired one is dropped). */
  get(token: string, nowMs: number): Verified | undefined {
    const e = this.entries.get(token);
    if (!e) return undefined;
    if (nowMs >= e.v.validUntilMs) {
      this.entries.delete(token);
      return undefined;
    }
    e.used = true;
    return e.v;
  }

  set(token: string, v: Verified): void {
    this.entries.delete(token);
    this.entries.set(token, { v, used: false });
    // Each pass over a used entry clears its mark and moves it last: at most `size` steps.
    while (this.entries.size > this.max) {
      const [oldest, e] = this.entries.entries().next().value!;
      this.entries.delete(oldest);
      if (!e.used || oldest === token) continue;
      e.used = false;
      this.entries.set(oldest, e);
    }
  }
}
