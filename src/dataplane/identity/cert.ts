// Reading identity and lifetime out of certificates the proxy holds or receives from peers.

import { X509Certificate } from 'node:crypto';
import { TrellisError } from '../../lib/errors.ts';

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
