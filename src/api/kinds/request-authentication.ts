// RequestAuthentication: which JWTs a workload accepts, where to find them, and how to verify them.
import { array, boolean, duration, fail, isObject, join, object, string, type Validator } from '../schema.ts';
import {
  headerName,
  nonEmptyString,
  type PolicyTargetReference,
  selectorDeprecated,
  selectorFields,
  selectorOneOf,
  type WorkloadSelector,
} from './common.ts';
import type { KindInfo } from './types.ts';

export interface JWTHeader {
  name: string;
  /** E.g. "Bearer ". */
  prefix?: string;
}

export interface ClaimToHeader {
  header: string;
  claim: string;
}

export interface JWTRule {
  /** Must equal the token's `iss`. */
  issuer: string;
  /** Any may match; empty means no audience check. */
  audiences?: string[];
  jwksUri?: string;
  /** Inline JWKS JSON. */
  jwks?: string;
  /** Default locations when neither fromHeaders nor fromParams is set: `Authorization: Bearer`, then `access_token`. */
  fromHeaders?: JWTHeader[];
  fromParams?: string[];
  fromCookies?: string[];
  outputPayloadToHeader?: string;
  /** Default false: the token is stripped before the request goes upstream. */
  forwardOriginalToken?: boolean;
  outputClaimToHeaders?: ClaimToHeader[];
  /** JWKS fetch timeout, default 5s. */
  timeout?: string;
  spaceDelimitedClaims?: string[];
}

export interface RequestAuthenticationSpec {
  selector?: WorkloadSelector;
  /** Deprecated: use targetRefs. */
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  jwtRules?: JWTRule[];
}

const jwksUri: Validator = string({
  check: (v, path, ctx) => {
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      return fail(
        ctx,
        path,
        `jwksUri ${JSON.stringify(v)} is not a URL: expected e.g. "https://issuer.example.com/.well-known/jwks.json"`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return fail(
        ctx,
        path,
        `jwksUri scheme ${url.protocol.slice(0, -1)} is not allowed: only http and https`,
      );
    }
    if (url.hostname === '') fail(ctx, path, `jwksUri ${JSON.stringify(v)} has no host`);
  },
});

const jwks: Validator = string({
  check: (v, path, ctx) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      return fail(ctx, path, 'jwks is not valid JSON: expected a JSON Web Key Set such as {"keys": [...]}');
    }
    if (!isObject(parsed) || !Array.isArray(parsed.keys)) {
      fail(ctx, path, 'jwks is not a JSON Web Key Set: expected an object with a "keys" list');
    }
  },
});

const jwtRule: Validator = object(
  {
    issuer: nonEmptyString(),
    audiences: array(nonEmptyString()),
    jwksUri,
    jwks,
    fromHeaders: array(object({ name: headerName(), prefix: string() }, { required: ['name'] })),
    fromParams: array(nonEmptyString()),
    fromCookies: array(nonEmptyString()),
    outputPayloadToHeader: headerName(),
    forwardOriginalToken: boolean(),
    outputClaimToHeaders: array(
      object({ header: headerName(), claim: nonEmptyString() }, { required: ['header', 'claim'] }),
    ),
    timeout: duration(),
    spaceDelimitedClaims: array(nonEmptyString()),
  },
  {
    required: ['issuer'],
    oneOf: [['jwksUri', 'jwks']],
    check: (v, path, ctx) => {
      // Each claim header is written once: two claims into one header would overwrite each other.
      const seen = new Set<string>();
      const list = Array.isArray(v.outputClaimToHeaders) ? v.outputClaimToHeaders : [];
      list.forEach((c: unknown, i: number) => {
        if (!isObject(c) || typeof c.header !== 'string') return;
        const h = c.header.toLowerCase();
        if (seen.has(h))
          fail(
            ctx,
            join(join(join(path, 'outputClaimToHeaders'), i), 'header'),
            `header ${c.header} is set by another outputClaimToHeaders entry: each header must be unique`,
          );
        seen.add(h);
      });
    },
  },
);

const fields: Validator = object(
  { ...selectorFields, jwtRules: array(jwtRule, { max: 4096 }) },
  { oneOf: [selectorOneOf], deprecated: selectorDeprecated },
);

export const requestAuthenticationSpec: Validator = fields;

export const requestAuthentication: KindInfo = {
  group: 'security.istio.io',
  kind: 'RequestAuthentication',
  versions: ['v1', 'v1beta1'],
  plural: 'requestauthentications',
  shortNames: ['ra'],
  spec: requestAuthenticationSpec,
};
