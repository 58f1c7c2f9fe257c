// The mesh CA: signs workload CSRs with identities the caller has authenticated, and issues the control
// plane's own serving certificate. Key material is loaded once; signing is pure computation.

import { KeyObject, type X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { JsonGeneralNames } from '@peculiar/x509';
import { TrellisError } from '../../lib/errors.ts';
import { isValidTrustDomain, spiffeId } from '../../lib/spiffe.ts';
import { verifiedCsrPublicKey } from './csr.ts';
import { chainPem, checkTtl, issueLeaf, type Signer, validityWindow } from './issue.ts';
import { loadPluggedCa } from './plugged.ts';
import { loadOrCreateRoot } from './root.ts';

export interface CaOptions {
  /** Where the generated root lives (root-cert.pem, root-key.pem, optional additional-roots.pem). */
  dir: string;
  /** Default cluster.local. */
  trustDomain?: string;
  /** Istio `cacerts` layout; when set, the generated root in `dir` is not used. */
  pluggedDir?: string;
  /** Default 24 h. */
  workloadCertTtlMs?: number;
  now?: () => Date;
}

export interface WorkloadIdentity {
  namespace: string;
  serviceAccount: string;
}

export interface SignedCert {
  certChainPem: string;
  notBefore: Date;
  notAfter: Date;
}

export interface ServingCertOptions {
  dnsNames: string[];
  ipAddresses: string[];
  identity?: WorkloadIdentity;
  ttlMs?: number;
}

export interface ServingCert {
  certChainPem: string;
  keyPem: string;
  notAfter: Date;
}

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';
export const DEFAULT_WORKLOAD_CERT_TTL_MS = 24 * 60 * 60 * 1000;

const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly #signer: Signer;
  readonly #bundlePem: string;
  readonly #defaultTtlMs: number;
  readonly #now: () => Date;

  private constructor(
    trustDomain: string,
    signer: Signer,
    roots: X509Certificate[],
    ttlMs: number,
    now: () => Date,
  ) {
    this.trustDomain = trustDomain;
    this.#signer = signer;
    const seen = new Set<string>();
    this.#bundlePem = roots
      .filter((r) => !seen.has(r.fingerprint256) && seen.add(r.fingerprint256))
      .map((r) => r.toString())
      .join('');
    this.#defaultTtlMs = ttlMs;
    this.#now = now;
  }

  static async loadOrCreate(opts: CaOptions): Promise<CertificateAuthority> {
    const trustDomain = opts.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    if (!isValidTrustDomain(trustDomain)) {
      throw new TrellisError(
        'TRL_INVALID_ARGUMENT',
        `invalid trust domain ${JSON.stringify(trustDomain)}: use lowercase letters, digits, '.', '-' and '_' (e.g. cluster.local)`,
      );
    }
    const ttlMs = checkTtl(opts.workloadCertTtlMs ?? DEFAULT_WORKLOAD_CERT_TTL_MS, 'workloadCertTtlMs');
    const now = opts.now ?? (() => new Date());
    const { signer, roots } = opts.pluggedDir
      ? await loadPluggedCa(opts.pluggedDir, now())
      : await loadOrCreateRoot(opts.dir, trustDomain, now());
    return new CertificateAuthority(trustDomain, signer, roots, ttlMs, now);
  }

  /** Every trusted root, PEM-concatenated; more than one while a root is being rotated. */
  trustBundlePem(): string {
    return this.#bundlePem;
  }

  /**
   * `identity` must come from authenticating the caller (e.g. its service account token); it, not the
   * CSR, decides the certificate's SPIFFE ID.
   */
  async signCsr(
    csrPem: string,
    identity: WorkloadIdentity,
    opts: { ttlMs?: number } = {},
  ): Promise<SignedCert> {
    const id = spiffeId(this.trustDomain, identity.namespace, identity.serviceAccount);
    const ttlMs = checkTtl(opts.ttlMs ?? this.#defaultTtlMs, 'ttlMs');
    const publicKey = await verifiedCsrPublicKey(csrPem, id);
    const leaf = await issueLeaf(this.#signer, {
      publicKey,
      sans: [{ type: 'url', value: id }],
      ...validityWindow(this.#now(), ttlMs, this.#signer.cert),
    });
    return {
      certChainPem: chainPem(leaf, this.#signer),
      notBefore: leaf.validFromDate,
      notAfter: leaf.validToDate,
    };
  }

  /** For the control plane's own listener; unlike workloads, it gets its key from here. */
  async issueServingCert(opts: ServingCertOptions): Promise<ServingCert> {
    const sans: JsonGeneralNames = [];
    for (const name of opts.dnsNames) {
      if (!DNS_NAME.test(name) || name.length > 253) {
        throw new TrellisError(
          'TRL_INVALID_ARGUMENT',
          `invalid DNS name ${JSON.stringify(name)} for a serving certificate: use a lowercase hostname such as trellis-ctl.trellis-system.svc`,
        );
      }
      sans.push({ type: 'dns', value: name });
    }
    for (const ip of opts.ipAddresses) {
      if (isIP(ip) === 0) {
        throw new TrellisError(
          'TRL_INVALID_ARGUMENT',
          `invalid IP address ${JSON.stringify(ip)} for a serving certificate`,
        );
      }
      sans.push({ type: 'ip', value: ip });
    }
    if (opts.identity) {
      sans.push({
        type: 'url',
        value: spiffeId(this.trustDomain, opts.identity.namespace, opts.identity.serviceAccount),
      });
    }
    if (sans.length === 0) {
      throw new TrellisError(
        'TRL_INVALID_ARGUMENT',
        'a serving certificate needs at least one DNS name, IP address or identity to be verifiable',
      );
    }
    const ttlMs = checkTtl(opts.ttlMs ?? this.#defaultTtlMs, 'ttlMs');
    const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const leaf = await issueLeaf(this.#signer, {
      publicKey: keys.publicKey,
      sans,
      ...validityWindow(this.#now(), ttlMs, this.#signer.cert),
    });
    return {
      certChainPem: chainPem(leaf, this.#signer),
      keyPem: KeyObject.from(keys.privateKey).export({ format: 'pem', type: 'pkcs8' }) as string,
      notAfter: leaf.validToDate,
    };
  }
}
