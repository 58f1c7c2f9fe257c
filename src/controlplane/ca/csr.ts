// Checking a workload's CSR before anything from it reaches a certificate. Only the public key is taken
// from the CSR; the identity comes from the caller's authentication, never from the CSR's own claims.

import { createPublicKey } from 'node:crypto';
import type { Pkcs10CertificateRequest, PublicKey, SubjectAlternativeNameExtension } from '@peculiar/x509';
import { TrellisError } from '../../lib/errors.ts';
import { x509 } from '../../lib/x509.ts';

const SAN_OID = '2.5.29.17';
const ALLOWED_CURVES = new Set(['prime256v1', 'secp384r1']);

function reject(message: string, cause?: unknown): TrellisError {
  return new TrellisError('TRL_CSR_REJECTED', message, { cause });
}

/** Returns the CSR's public key once its signature, key strength and URI SANs check out for `identity`. */
export async function verifiedCsrPublicKey(csrPem: string, identity: string): Promise<PublicKey> {
  let csr: Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (err) {
    throw reject('CSR is not a PEM PKCS#10 certificate request (-----BEGIN CERTIFICATE REQUEST-----)', err);
  }
  // Proof of possession: a CSR whose signature does not verify could carry someone else's public key.
  let ok = false;
  try {
    ok = await csr.verify();
  } catch (err) {
    throw reject(
      `CSR signature could not be checked (${(err as Error).message}): sign the CSR with its own key`,
      err,
    );
  }
  if (!ok) throw reject('CSR signature does not verify: the CSR was altered or not signed with its own key');

  checkKeyStrength(csr.publicKey);
  for (const uri of uriSans(csr)) {
    if (uri !== identity) {
      throw reject(
        `CSR asks for URI SAN ${uri} but the caller is authenticated as ${identity}: request only your own identity`,
      );
    }
  }
  return csr.publicKey;
}

function checkKeyStrength(publicKey: PublicKey): void {
  let key: ReturnType<typeof createPublicKey>;
  try {
    key = createPublicKey({ key: Buffer.from(publicKey.rawData), format: 'der', type: 'spki' });
  } catch (err) {
    throw reject('CSR public key is not a supported key type: use ECDSA P-256', err);
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec' && ALLOWED_CURVES.has(details.namedCurve ?? '')) return;
  if (key.asymmetricKeyType === 'rsa' && (details.modulusLength ?? 0) >= 2048) return;
  throw reject(
    `CSR public key (${key.asymmetricKeyType} ${details.namedCurve ?? details.modulusLength ?? ''}) is too weak or unsupported: use ECDSA P-256/P-384 or RSA >= 2048 bits`,
  );
}

function uriSans(csr: Pkcs10CertificateRequest): string[] {
  const out: string[] = [];
  for (const ext of csr.extensions) {
    if (ext.type !== SAN_OID) continue;
    let san: SubjectAlternativeNameExtension;
    try {
      san = new x509.SubjectAlternativeNameExtension(ext.rawData);
    } catch (err) {
      // Unreadable names could hide a URI, so the CSR cannot be judged safe.
      throw reject('CSR subjectAltName extension cannot be parsed: request only a URI SAN', err);
    }
    for (const n of san.names.items) if (n.type === 'url') out.push(n.value);
  }
  return out;
}
