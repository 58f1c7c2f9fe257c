// Workload identities are SPIFFE IDs of one fixed shape: spiffe://<trust-domain>/ns/<namespace>/sa/<sa>.
// Character sets follow the SPIFFE ID spec, which keeps IDs safe to compare as plain strings.

import { TrellisError } from './errors.ts';

export interface SpiffeIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;
const SHAPE = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;
// The SPIFFE spec caps URIs at 2048 bytes so they fit in certificates and headers.
const MAX_URI_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;

export function isValidTrustDomain(td: string): boolean {
  return td.length <= MAX_TRUST_DOMAIN_LENGTH && TRUST_DOMAIN.test(td);
}

// "." and ".." are legal characters but would let a path be normalised into another identity.
function isValidSegment(s: string): boolean {
  return SEGMENT.test(s) && s !== '.' && s !== '..';
}

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  if (!isValidTrustDomain(trustDomain)) {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `invalid trust domain ${JSON.stringify(trustDomain)}: use lowercase letters, digits, '.', '-' and '_' (e.g. cluster.local)`,
    );
  }
  for (const [what, value] of [
    ['namespace', namespace],
    ['service account', serviceAccount],
  ] as const) {
    if (!isValidSegment(value)) {
      throw new TrellisError(
        'TRL_INVALID_ARGUMENT',
        `invalid ${what} ${JSON.stringify(value)} for a SPIFFE ID: use letters, digits, '.', '-' and '_' (not "." or "..")`,
      );
    }
  }
  const id = `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  if (id.length > MAX_URI_LENGTH) {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `SPIFFE ID is ${id.length} characters long; the limit is ${MAX_URI_LENGTH}: shorten the namespace or service account`,
    );
  }
  return id;
}

/** Strict parse: anything but exactly `spiffe://<td>/ns/<ns>/sa/<sa>` with valid characters is undefined. */
export function parseSpiffeId(uri: string): SpiffeIdentity | undefined {
  if (typeof uri !== 'string' || uri.length > MAX_URI_LENGTH) return undefined;
  const m = SHAPE.exec(uri);
  if (!m) return undefined;
  const [, trustDomain, namespace, serviceAccount] = m;
  if (!isValidTrustDomain(trustDomain) || !isValidSegment(namespace) || !isValidSegment(serviceAccount)) {
    return undefined;
  }
  return { trustDomain, namespace, serviceAccount };
}
