// The mesh CA: signs workload CSRs with identities the caller has authenticated, and issues the control
// plane's own serving certificate. Key material is loaded at start and replaced only by a root
// rotation (use()); signing is pure computation.

import { createHash, KeyObject, type X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import type { JsonGeneralNames } from '@peculiar/x509';
import { TrellisError } from '../../lib/errors.ts';
import { isValidTrustDomain, spiffeId } from '../../lib/spiffe.ts';
import { chainRoot, chainRootPem } from '../../lib/trust-chain.ts';
import type { TrustBundle } from '../../push/protocol.ts';
import { verifiedCsrPublicKey } from './csr.ts';
import { chainPem, checkTtl, issueLeaf, type Signer, validityWindow } from './issue.ts';
import { loadPluggedCa } from './plugged.ts';
import type { CaMaterial } from './root.ts';
import { loadGeneratedCa, type RotationRecord } from './rotation-files.ts';

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
  /** The CA dir of the generated root; undefined with a plugged-in CA. */
  readonly dir: string | undefined;
  /** The rotation state found at start (generated root only). */
  readonly rotation: RotationRecord | undefined;
  #signer!: Signer;
  #roots!: X509Certificate[];
  #bundlePem!: string;
  #signingRoot!: X509Certificate;
  #trust!: TrustBundle;
  readonly #defaultTtlMs: number;
  readonly #now: () => Date;
  readonly #listeners: (() => void)[] = [];

  private constructor(
    trustDomain: string,
    material: CaMaterial,
    ttlMs: number,
    now: () => Date,
    dir: string | undefined,
    rotation: RotationRecord | undefined,
  ) {
    this.trustDomain = trustDomain;
    this.#defaultTtlMs = ttlMs;
    this.#now = now;
    this.dir = dir;
    this.rotation = rotation;
    this.#set(material);
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
    if (opts.pluggedDir) {
      const material = await loadPluggedCa(opts.pluggedDir, now());
      return new CertificateAuthority(trustDomain, material, ttlMs, now, undefined, undefined);
    }
    const { material, rotation } = await loadGeneratedCa(opts.dir, trustDomain, now());
    return new CertificateAuthority(trustDomain, material, ttlMs, now, opts.dir, rotation);
  }

  #set(material: CaMaterial): void {
    const seen = new Set<string>();
    this.#roots = material.roots.filter((r) => !seen.has(r.fingerprint256) && seen.add(r.fingerprint256));
    this.#bundlePem = this.#roots.map((r) => r.toString()).join('');
    this.#signer = material.signer;
    const root = chainRoot(material.signer.cert, material.signer.chain, this.#roots);
    if (!root)
      throw new TrellisError(
        'TRL_CA',
        `the CA signing certificate (${material.signer.cert.subject}) does not chain to a root in the trust bundle`,
      );
    this.#signingRoot = root;
    const version = createHash('sha256').update(`${this.#bundlePem}|${root.fingerprint256}`).digest('hex');
    this.#trust = {
      version: version.slice(0, 16),
      bundle: this.#bundlePem,
      signingRoot: root.fingerprint256,
    };
  }

  /** What every proxy must trust, and which root new certificates come from. */
  trust(): TrustBundle {
    return this.#trust;
  }

  /** Switches signer and trust bundle at once (a rotation's phase change); listeners then push them. */
  use(material: CaMaterial): void {
    this.#set(material);
    for (const l of this.#listeners) l();
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /** Every trusted root, PEM-concatenated; more than one while a root is being rotated. */
  trustBundlePem(): string {
    return this.#bundlePem;
  }

  trustedRoots(): readonly X509Certificate[] {
    return this.#roots;
  }

  /** The root that certificates signed now chain to. */
  signingRoot(): X509Certificate {
    return this.#signingRoot;
  }

  /** Which trusted root a leaf-first PEM chain leads to (every signature checked), if any. */
  rootOf(chainPem: string): X509Certificate | undefined {
    return chainRootPem(chainPem, this.#bundlePem);
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
