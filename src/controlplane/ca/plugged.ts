// A plugged-in CA in Istio's `cacerts` layout, so an operator's existing PKI (or an Istio migration) works
// unchanged: Trellis signs with an intermediate and never holds the root key.

import type { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { chainRoot } from '../../lib/trust-chain.ts';
import { x509 } from '../../lib/x509.ts';
import { caFileError, readCaFile } from './files.ts';
import type { Signer } from './issue.ts';
import { parseCertificates, parseSigningKey } from './keys.ts';
import type { CaMaterial } from './root.ts';

export const PLUGGED_FILES = {
  caCert: 'ca-cert.pem',
  caKey: 'ca-key.pem',
  rootCert: 'root-cert.pem',
  certChain: 'cert-chain.pem',
} as const;

const LAYOUT_HINT =
  'a plugged-in CA dir needs ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem (Istio cacerts layout)';

export async function loadPluggedCa(dir: string, now: Date): Promise<CaMaterial> {
  const path = (f: string) => join(dir, f);
  const read = await Promise.allSettled(
    [PLUGGED_FILES.caCert, PLUGGED_FILES.caKey, PLUGGED_FILES.rootCert, PLUGGED_FILES.certChain].map((f) =>
      readCaFile(path(f), LAYOUT_HINT),
    ),
  );
  // The first missing file in the layout's order, not whichever read failed first: the same error every time.
  const failed = read.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const [caCertText, caKeyText, rootText, chainText] = read.map(
    (r) => (r as PromiseFulfilledResult<string>).value,
  );
  const caCertPath = path(PLUGGED_FILES.caCert);
  const [caCert] = parseCertificates(caCertText, caCertPath);
  const key = parseSigningKey(caKeyText, path(PLUGGED_FILES.caKey));
  const roots = parseCertificates(rootText, path(PLUGGED_FILES.rootCert));
  const chain = parseCertificates(chainText, path(PLUGGED_FILES.certChain));

  if (!caCert.checkPrivateKey(key.keyObject)) {
    throw caFileError(
      path(PLUGGED_FILES.caKey),
      `does not match ${caCertPath}`,
      undefined,
      'provide the key of ca-cert.pem',
    );
  }
  if (!caCert.ca || !canSignCertificates(caCert)) {
    throw caFileError(
      caCertPath,
      'is not a CA certificate allowed to sign certificates (needs CA:true and keyCertSign)',
    );
  }
  if (caCert.validToDate <= now) {
    throw caFileError(
      caCertPath,
      `expired at ${caCert.validToDate.toISOString()}`,
      undefined,
      'install a renewed intermediate',
    );
  }
  for (const r of roots) {
    if (!r.ca) throw caFileError(path(PLUGGED_FILES.rootCert), `holds a non-CA certificate (${r.subject})`);
  }
  if (!chainRoot(caCert, chain, roots)) {
    throw caFileError(
      caCertPath,
      `does not chain to any certificate in ${path(PLUGGED_FILES.rootCert)}`,
      undefined,
      'check that root-cert.pem holds the root that issued it and cert-chain.pem any intermediates in between',
    );
  }
  // Istio's cert-chain.pem starts with ca-cert.pem; tolerate files that list only the certs above it.
  const sent = chain[0]?.fingerprint256 === caCert.fingerprint256 ? chain : [caCert, ...chain];
  const signer: Signer = { cert: caCert, key, chain: sent };
  return { signer, roots };
}

function canSignCertificates(cert: X509Certificate): boolean {
  const ku = new x509.X509Certificate(cert.raw).getExtension(x509.KeyUsagesExtension);
  return !ku || (ku.usages & x509.KeyUsageFlags.keyCertSign) !== 0;
}
