// The proxy generates its own key pair and sends only a CSR, so the private key never leaves this process.

import { KeyObject } from 'node:crypto';
import { TrellisError } from '../../lib/errors.ts';
import { parseSpiffeId } from '../../lib/spiffe.ts';
import { x509 } from '../../lib/x509.ts';

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export async function generateKeyAndCsr(spiffeId: string): Promise<{ keyPem: string; csrPem: string }> {
  if (!parseSpiffeId(spiffeId)) {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `cannot request a certificate for ${JSON.stringify(spiffeId)}: expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
    );
  }
  // Extractable only so the key can be handed to tls.createSecureContext as PEM; it is never sent anywhere.
  const keys = await crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: SIGNING,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  });
  const keyPem = KeyObject.from(keys.privateKey).export({ format: 'pem', type: 'pkcs8' }) as string;
  return { keyPem, csrPem: `${csr.toString('pem')}\n` };
}
