// The proxy generates its own key pair and sends only a CSR, so the private key never leaves this process.
// The CSR is one fixed shape (an EC P-256 key, an empty subject, one URI SAN), so it is encoded here in
// a few lines of DER rather than with an X.509 library: that library and its dependencies cost every
// sidecar about 14 MB of memory for a message written once per certificate rotation.

import { generateKeyPairSync, sign } from 'node:crypto';
import { TrellisError } from '../../lib/errors.ts';
import { parseSpiffeId } from '../../lib/spiffe.ts';

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), length(body.length), body]);
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [40 * a + b];
  for (const arc of rest) {
    const base128 = [arc & 0x7f];
    for (let v = arc >> 7; v > 0; v >>= 7) base128.unshift(0x80 | (v & 0x7f));
    bytes.push(...base128);
  }
  return tlv(0x06, Buffer.from(bytes));
}

const SEQUENCE = 0x30;
const SET = 0x31;
const EXTENSION_REQUEST = oid('1.2.840.113549.1.9.14'); // PKCS#9
const SUBJECT_ALT_NAME = oid('2.5.29.17');
const ECDSA_WITH_SHA256 = tlv(SEQUENCE, oid('1.2.840.10045.4.3.2'));

/** RFC 2986 CertificationRequest for `spiffeId`, signed with the key. */
function certificationRequest(spki: Buffer, spiffeId: string, signWith: (data: Buffer) => Buffer): Buffer {
  const uri = tlv(0x86, Buffer.from(spiffeId, 'ascii')); // GeneralName uniformResourceIdentifier [6]
  const san = tlv(SEQUENCE, SUBJECT_ALT_NAME, tlv(0x04, tlv(SEQUENCE, uri)));
  const extensionRequest = tlv(SEQUENCE, EXTENSION_REQUEST, tlv(SET, tlv(SEQUENCE, san)));
  const info = tlv(
    SEQUENCE,
    tlv(0x02, Buffer.from([0])), // version 0
    tlv(SEQUENCE), // empty subject: the identity is the SAN
    spki,
    tlv(0xa0, extensionRequest), // attributes [0] IMPLICIT SET OF Attribute
  );
  const signature = tlv(0x03, Buffer.from([0]), signWith(info));
  return tlv(SEQUENCE, info, ECDSA_WITH_SHA256, signature);
}

export async function generateKeyAndCsr(spiffeId: string): Promise<{ keyPem: string; csrPem: string }> {
  if (!parseSpiffeId(spiffeId)) {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `cannot request a certificate for ${JSON.stringify(spiffeId)}: expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`,
    );
  }
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const der = certificationRequest(spki, spiffeId, (data) => sign('sha256', data, privateKey));
  const base64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  const csrPem = `-----BEGIN CERTIFICATE REQUEST-----\n${base64}${base64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE REQUEST-----\n`;
  const keyPem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  return { keyPem, csrPem };
}
