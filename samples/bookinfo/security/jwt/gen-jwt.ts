// Signs a JWT with the sample key (key.pem beside this file) for the issuer that
// request-authentication.yaml trusts, as Istio's security/tools/jwt/samples/gen-jwt.py does.
//
//   node samples/bookinfo/security/jwt/gen-jwt.ts [--sub <subject>] [--expire <seconds>]
//        [--claim name=value ...] [--aud <audience>]
//
// `--expire=-60` gives a token that expired a minute ago. Sample keys are for samples only.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { importPKCS8, SignJWT } from 'jose';

export const SAMPLE_ISSUER = 'bookinfo-sample@trellis.dev';
export const SAMPLE_KID = 'bookinfo-sample';
const KEY = path.join(import.meta.dirname, 'key.pem');

export interface SampleToken {
  sub?: string;
  /** Seconds from now; negative: already expired. Default one hour. */
  expire?: number;
  claims?: Record<string, unknown>;
  aud?: string;
  issuer?: string;
}

export async function sampleToken(o: SampleToken = {}): Promise<string> {
  const key = await importPKCS8(readFileSync(KEY, 'utf8'), 'RS256');
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(o.claims ?? {})
    .setProtectedHeader({ alg: 'RS256', kid: SAMPLE_KID, typ: 'JWT' })
    .setIssuer(o.issuer ?? SAMPLE_ISSUER)
    .setSubject(o.sub ?? 'bookinfo-user')
    .setIssuedAt(Math.min(now, now + (o.expire ?? 3600) - 60))
    .setExpirationTime(now + (o.expire ?? 3600));
  if (o.aud) jwt.setAudience(o.aud);
  return jwt.sign(key);
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      sub: { type: 'string' },
      expire: { type: 'string' },
      aud: { type: 'string' },
      claim: { type: 'string', multiple: true },
    },
  });
  const claims: Record<string, string> = {};
  for (const c of values.claim ?? []) {
    const eq = c.indexOf('=');
    if (eq <= 0) throw new Error(`--claim ${c}: expected name=value`);
    claims[c.slice(0, eq)] = c.slice(eq + 1);
  }
  const expire = values.expire === undefined ? undefined : Number(values.expire);
  if (expire !== undefined && !Number.isFinite(expire)) throw new Error('--expire: expected seconds');
  process.stdout.write(`${await sampleToken({ sub: values.sub, expire, aud: values.aud, claims })}\n`);
}
