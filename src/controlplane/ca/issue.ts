// Building and signing leaf certificates. Every leaf Trellis issues goes through issueLeaf, so the profile
// (extensions, serial, validity) is decided in one place.

import { randomBytes, X509Certificate } from 'node:crypto';
import type { AuthorityKeyIdentifierExtension, JsonGeneralNames, PublicKeyType } from '@peculiar/x509';
import { TrellisError } from '../../lib/errors.ts';
import { x509 } from '../../lib/x509.ts';
import type { SigningKey } from './keys.ts';

export interface Signer {
  /** The certificate whose key signs leaves: the generated root, or a plugged-in intermediate. */
  cert: X509Certificate;
  key: SigningKey;
  /** Sent after the leaf so peers can build a path to a root in their trust bundle. */
  chain: X509Certificate[];
}

/** Backdating absorbs clock skew between the CA and peers verifying the cert. */
const MAX_BACKDATE_MS = 60_000;
const MIN_TTL_MS = 1_000;

export function checkTtl(ttlMs: number, what: string): number {
  if (!Number.isFinite(ttlMs) || ttlMs < MIN_TTL_MS) {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `${what} must be a number of milliseconds >= ${MIN_TTL_MS} (X.509 times have one-second resolution), got ${ttlMs}`,
    );
  }
  return ttlMs;
}

/**
 * notBefore = now - min(1 min, ttl/4): the backdate is capped for short TTLs because it counts towards the
 * lifetime a proxy sees, and a 3 s cert backdated a full minute would look past half-life (due for
 * rotation) the moment it arrives. X.509 times have whole seconds, so notAfter is rounded up (a cert is
 * never shorter-lived than asked) and notBefore down. notAfter never outlives the signing certificate.
 */
export function validityWindow(
  now: Date,
  ttlMs: number,
  signer: X509Certificate,
): { notBefore: Date; notAfter: Date } {
  const t = now.getTime();
  const signerEnd = signer.validToDate.getTime();
  const notAfter = new Date(Math.min(Math.ceil((t + ttlMs) / 1000) * 1000, signerEnd));
  if (notAfter.getTime() <= t) {
    throw new TrellisError(
      'TRL_CA',
      `the CA signing certificate (${signer.subject || 'no subject'}) expired at ${signer.validToDate.toISOString()}: rotate the CA certificate`,
    );
  }
  const notBefore = new Date(Math.floor((t - Math.min(MAX_BACKDATE_MS, ttlMs / 4)) / 1000) * 1000);
  return { notBefore, notAfter };
}

/** 16 random bytes, top bit clear (positive) and next bit set (so DER keeps all 16 bytes). */
export function randomSerialHex(): string {
  const b = randomBytes(16);
  b[0] = (b[0] & 0x7f) | 0x40;
  return b.toString('hex');
}

export async function authorityKeyId(issuer: X509Certificate): Promise<AuthorityKeyIdentifierExtension> {
  const cert = new x509.X509Certificate(issuer.raw);
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  return ski
    ? new x509.AuthorityKeyIdentifierExtension(ski.keyId)
    : x509.AuthorityKeyIdentifierExtension.create(cert);
}

export interface LeafRequest {
  publicKey: PublicKeyType;
  sans: JsonGeneralNames;
  notBefore: Date;
  notAfter: Date;
}

export async function issueLeaf(signer: Signer, req: LeafRequest): Promise<X509Certificate> {
  const issuer = new x509.X509Certificate(signer.cert.raw);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    // Empty subject, as Istio does: the identity lives only in the SAN, which RFC 5280 then requires
    // to be critical.
    subject: '',
    issuer: issuer.subjectName,
    notBefore: req.notBefore,
    notAfter: req.notAfter,
    publicKey: req.publicKey,
    signingKey: signer.key.cryptoKey,
    signingAlgorithm: signer.key.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      await x509.SubjectKeyIdentifierExtension.create(req.publicKey),
      await authorityKeyId(signer.cert),
      new x509.SubjectAlternativeNameExtension(req.sans, true),
    ],
  });
  return new X509Certificate(Buffer.from(cert.rawData));
}

export function chainPem(leaf: X509Certificate, signer: Signer): string {
  return [leaf, ...signer.chain].map((c) => c.toString()).join('');
}
