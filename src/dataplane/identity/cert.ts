// Reading identity and lifetime out of certificates the proxy holds or receives from peers.

import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { TrellisError } from '../../lib/errors.ts';

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

export function certValidity(pem: string): { notBefore: Date; notAfter: Date } {
  let cert: X509Certificate;
  try {
    // With a chain, Node parses the first certificate: the leaf, whose lifetime is the one that matters.
    cert = new X509Certificate(pem);
  } catch (err) {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      'cannot read certificate validity: the input is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)',
      { cause: err },
    );
  }
  return { notBefore: cert.validFromDate, notAfter: cert.validToDate };
}

/**
 * Milliseconds from `now` until the certificate should be renewed: about half its lifetime, moved by up
 * to ±jitterFraction of the lifetime so proxies started together do not all hit the CA at once.
 * Renewing at half-life leaves the other half to retry through a CA outage. Never negative.
 */
export function rotationDelayMs(
  notBefore: Date,
  notAfter: Date,
  now: Date = new Date(),
  jitterFraction = 0.05,
): number {
  if (!(jitterFraction >= 0 && jitterFraction < 0.5)) {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `jitterFraction must be in [0, 0.5), got ${jitterFraction}`,
    );
  }
  const lifetime = notAfter.getTime() - notBefore.getTime();
  if (!(lifetime > 0)) return 0;
  const jitter = (Math.random() * 2 - 1) * jitterFraction * lifetime;
  const renewAt = notBefore.getTime() + lifetime / 2 + jitter;
  return Math.max(0, Math.round(renewAt - now.getTime()));
}
