// The proxy's own identity material. Rotation replaces it as a whole; listeners and pools read the
// current one when they open a connection, so connections already open are never disturbed.
import { createSecureContext, type SecureContext } from 'node:tls';

export interface Credentials {
  keyPem: string;
  certChainPem: string;
  trustBundlePem: string;
  identity: string;
  notBefore: Date;
  notAfter: Date;
}

export class CredentialStore {
  private current?: Credentials;
  private context?: SecureContext;
  private readonly listeners: ((c: Credentials) => void)[] = [];

  get(): Credentials {
    if (!this.current) throw new Error('proxy has no certificate yet');
    return this.current;
  }

  has(): boolean {
    return this.current !== undefined;
  }

  secureContext(): SecureContext {
    this.context ??= createSecureContext(this.tlsOptions());
    return this.context;
  }

  tlsOptions(): { key: string; cert: string; ca: string } {
    const c = this.get();
    return { key: c.keyPem, cert: c.certChainPem, ca: c.trustBundlePem };
  }

  set(c: Credentials): void {
    this.current = c;
    this.context = undefined;
    for (const l of this.listeners) l(c);
  }

  /**
   * A new trust bundle (a root rotation) with the same certificate: listeners verify peers against it
   * from their next handshake on.
   */
  setTrustBundle(trustBundlePem: string): void {
    this.set({ ...this.get(), trustBundlePem });
  }

  onChange(l: (c: Credentials) => void): void {
    this.listeners.push(l);
  }
}
