// Parsing PEM certificates and CA signing keys, whatever format an operator's tooling produced.

import { createPrivateKey, type KeyObject, type webcrypto, X509Certificate } from 'node:crypto';
import { caFileError } from './files.ts';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM file, in order; at least one, or a TRL_CA error naming the file. */
export function parseCertificates(text: string, file: string): X509Certificate[] {
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0) {
    throw caFileError(
      file,
      'holds no PEM certificate',
      undefined,
      'expected -----BEGIN CERTIFICATE----- blocks',
    );
  }
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw caFileError(
        file,
        `has an unreadable certificate (#${i + 1})`,
        err,
        'replace it with a valid PEM file',
      );
    }
  });
}

export interface SigningKey {
  keyObject: KeyObject;
  cryptoKey: webcrypto.CryptoKey;
  /** What @peculiar/x509 signs with; hash sized to the key so the chain is not weaker than the CA. */
  algorithm: webcrypto.Algorithm | webcrypto.EcdsaParams;
}

const CURVES: Record<string, { namedCurve: string; hash: string }> = {
  prime256v1: { namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { namedCurve: 'P-384', hash: 'SHA-384' },
  secp521r1: { namedCurve: 'P-521', hash: 'SHA-512' },
};

/** Accepts PKCS#8, SEC1 ("EC PRIVATE KEY") and PKCS#1 ("RSA PRIVATE KEY") PEM, as openssl and Istio tools write. */
export function parseSigningKey(pem: string, file: string): SigningKey {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(pem);
  } catch (err) {
    throw caFileError(
      file,
      'is not a readable private key',
      err,
      'provide an unencrypted PEM EC or RSA private key',
    );
  }
  return toSigningKey(keyObject, file);
}

export function toSigningKey(keyObject: KeyObject, file: string): SigningKey {
  const type = keyObject.asymmetricKeyType;
  if (type === 'ec') {
    const curve = CURVES[keyObject.asymmetricKeyDetails?.namedCurve ?? ''];
    if (!curve) {
      throw caFileError(
        file,
        `uses EC curve ${keyObject.asymmetricKeyDetails?.namedCurve}`,
        undefined,
        'use P-256, P-384 or P-521',
      );
    }
    const cryptoKey = keyObject.toCryptoKey({ name: 'ECDSA', namedCurve: curve.namedCurve }, false, ['sign']);
    return { keyObject, cryptoKey, algorithm: { name: 'ECDSA', hash: curve.hash } };
  }
  if (type === 'rsa') {
    const bits = keyObject.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048)
      throw caFileError(file, `holds a ${bits}-bit RSA key`, undefined, 'use at least 2048 bits');
    const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const cryptoKey = keyObject.toCryptoKey(algorithm, false, ['sign']);
    return { keyObject, cryptoKey, algorithm };
  }
  throw caFileError(
    file,
    `holds a ${type} key, which the CA cannot sign with`,
    undefined,
    'use an EC or RSA key',
  );
}
