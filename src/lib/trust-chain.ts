// Which root a certificate chain leads to. Both planes ask it during a root rotation: the control plane
// to count which root each workload's certificate comes from, the proxy to tell whether its own
// certificate is from the root the CA now signs with.
import { X509Certificate } from 'node:crypto';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const MAX_CHAIN_DEPTH = 8;

/** Every certificate in a PEM text, in order; unreadable blocks are skipped. */
export function pemCertificates(text: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const block of text.match(PEM_CERT) ?? []) {
    try {
      out.push(new X509Certificate(block));
    } catch {
      // Not a certificate this side can use: it can vouch for nothing.
    }
  }
  return out;
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

/**
 * The root among `roots` that `cert` chains to through `intermediates`, every signature checked; or
 * undefined. A root in `roots` that is `cert` itself counts.
 */
export function chainRoot(
  cert: X509Certificate,
  intermediates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
): X509Certificate | undefined {
  let current = cert;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    const root = roots.find((r) => r.fingerprint256 === current.fingerprint256 || issuedBy(current, r));
    if (root) return root;
    const next = intermediates.find(
      (c) => c.fingerprint256 !== current.fingerprint256 && c.ca && issuedBy(current, c),
    );
    if (!next) return undefined;
    current = next;
  }
  return undefined;
}

/** The root of a leaf-first PEM chain among the roots of a PEM bundle. */
export function chainRootPem(chainPem: string, bundlePem: string): X509Certificate | undefined {
  const [leaf, ...rest] = pemCertificates(chainPem);
  return leaf && chainRoot(leaf, rest, pemCertificates(bundlePem));
}
