import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
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

/**
 * The peer's SPIFFE ID, or undefined when the certificate does not carry exactly one spiffe:// URI SAN
 * (an X.509-SVID must have one; two would make the identity ambiguous).
 */
export function peerIdentity(cert: PeerCertificate | X509Certificate): string | undefined {
  const san = cert instanceof X509Certificate ? cert.subjectAltName : cert?.subjectaltname;
  if (typeof san !== 'string' || san === '') return undefined;
  const names = parseSubjectAltName(san);
  if (!names) return undefined;
  const ids = names.filter((n) => n.type === 'URI' && n.value.startsWith('spiffe://')).map((n) => n.value);
  return ids.length === 1 ? ids[0] : undefined;
}

/**
 * Node prints SANs as `TYPE:value, TYPE:value`. Values containing commas, quotes, backslashes or control
 * characters are printed as JSON string literals, so a quoted value is decoded with JSON.parse rather
 * than split on ", ". Returns undefined for text that does not follow that grammar.
 */
export function parseSubjectAltName(text: string): { type: string; value: string }[] | undefined {
  const out: { type: string; value: string }[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) return undefined;
    const type = text.slice(i, colon);
    if (!/^[A-Za-z ]+$/.test(type)) return undefined;
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = endOfJsonString(text, colon + 1);
      if (end < 0) return undefined;
      try {
        value = JSON.parse(text.slice(colon + 1, end));
      } catch {
        return undefined;
      }
    } else {
      const sep = text.indexOf(', ', colon + 1);
      end = sep < 0 ? text.length : sep;
      value = text.slice(colon + 1, end);
    }
    out.push({ type, value });
    if (end === text.length) break;
    if (text.slice(end, end + 2) !== ', ') return undefined;
    i = end + 2;
  }
  return out;
}

// Index just past the closing quote of the JSON string starting at `start`, or -1 if unterminated.
function endOfJsonString(text: string, start: number): number {
  for (let j = start + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (text[j] === '"') return j + 1;
  }
  return -1;
}
