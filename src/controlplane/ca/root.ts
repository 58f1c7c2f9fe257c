// The generated root: created once, persisted in the CA dir, and reused on every restart so existing
// workload certificates stay trusted.

import { KeyObject, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { x509 } from '../../lib/x509.ts';
import { caFileError, ensurePrivateDir, fileExists, readCaFile, writeFileAtomic } from './files.ts';
import type { Signer } from './issue.ts';
import { randomSerialHex } from './issue.ts';
import { parseCertificates, parseSigningKey, toSigningKey } from './keys.ts';

export const ROOT_CERT_FILE = 'root-cert.pem';
export const ROOT_KEY_FILE = 'root-key.pem';
/** Optional: old roots still trusted while workloads move to a new one (root rotation). */
export const ADDITIONAL_ROOTS_FILE = 'additional-roots.pem';

const ROOT_VALIDITY_YEARS = 10;
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface CaMaterial {
  signer: Signer;
  roots: X509Certificate[];
}

export async function loadOrCreateRoot(dir: string, trustDomain: string, now: Date): Promise<CaMaterial> {
  const signer = await loadOrCreateRootPair(dir, ROOT_FILES, trustDomain, now);
  return { signer, roots: [signer.cert, ...(await additionalRoots(dir))] };
}

/** Where a root's certificate and key live in the CA dir. */
export interface RootFiles {
  cert: string;
  key: string;
}

export const ROOT_FILES: RootFiles = { cert: ROOT_CERT_FILE, key: ROOT_KEY_FILE };

export async function loadOrCreateRootPair(
  dir: string,
  files: RootFiles,
  trustDomain: string,
  now: Date,
): Promise<Signer> {
  const certPath = join(dir, files.cert);
  const keyPath = join(dir, files.key);
  const [hasCert, hasKey] = await Promise.all([fileExists(certPath), fileExists(keyPath)]);
  if (hasCert !== hasKey) {
    const [missing, present] = hasCert ? [keyPath, certPath] : [certPath, keyPath];
    throw caFileError(
      missing,
      `is missing while ${present} exists`,
      undefined,
      `restore it from backup, or delete ${present} to generate a new root (workloads must then get new certificates)`,
    );
  }
  return hasCert ? loadRoot(certPath, keyPath, now) : createRoot(dir, files, trustDomain, now);
}

async function loadRoot(certPath: string, keyPath: string, now: Date): Promise<Signer> {
  const certs = parseCertificates(await readCaFile(certPath), certPath);
  if (certs.length !== 1) {
    throw caFileError(
      certPath,
      `holds ${certs.length} certificates, expected exactly the root`,
      undefined,
      `put roots that should stay trusted in ${ADDITIONAL_ROOTS_FILE}`,
    );
  }
  const cert = certs[0];
  const key = parseSigningKey(await readCaFile(keyPath), keyPath);
  if (!cert.checkPrivateKey(key.keyObject)) {
    throw caFileError(
      keyPath,
      `does not match ${certPath}`,
      undefined,
      'restore the matching pair, or delete both files to generate a new root',
    );
  }
  if (!cert.ca) throw caFileError(certPath, 'is not a CA certificate (basicConstraints CA:false)');
  if (cert.validToDate <= now) {
    throw caFileError(
      certPath,
      `expired at ${cert.validToDate.toISOString()}`,
      undefined,
      `move it to ${ADDITIONAL_ROOTS_FILE} if needed and delete root-cert.pem and root-key.pem to generate a new root`,
    );
  }
  return { cert, key, chain: [] };
}

async function createRoot(dir: string, files: RootFiles, trustDomain: string, now: Date): Promise<Signer> {
  await ensurePrivateDir(dir);
  const keys = await crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const notAfter = new Date(now);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + ROOT_VALIDITY_YEARS);
  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    // The date tells two roots of one trust domain apart (in `trellis ca status`, openssl, browsers).
    name: [{ O: ['Trellis'] }, { CN: [`Trellis root CA ${trustDomain} ${now.toISOString().slice(0, 10)}`] }],
    notBefore: new Date(now.getTime() - 60_000),
    notAfter,
    keys,
    signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const cert = new X509Certificate(Buffer.from(root.rawData));
  const keyObject = KeyObject.from(keys.privateKey);
  // Key first: a crash between the two writes then leaves a key without a cert, which loadOrCreate reports.
  await writeFileAtomic(
    join(dir, files.key),
    keyObject.export({ format: 'pem', type: 'pkcs8' }) as string,
    0o600,
  );
  await writeFileAtomic(join(dir, files.cert), cert.toString(), 0o644);
  return {
    cert,
    key: toSigningKey(keyObject, join(dir, files.key)),
    chain: [],
  };
}

export async function additionalRoots(dir: string): Promise<X509Certificate[]> {
  const path = join(dir, ADDITIONAL_ROOTS_FILE);
  if (!(await fileExists(path))) return [];
  const certs = parseCertificates(await readCaFile(path), path);
  for (const c of certs) {
    if (!c.ca)
      throw caFileError(
        path,
        `holds a non-CA certificate (${c.subject || c.serialNumber})`,
        undefined,
        'list only root certificates',
      );
  }
  return certs;
}
