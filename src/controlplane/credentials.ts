// The state directory's credential store: what a DestinationRule's `tls.credentialName` names, in
// place of Kubernetes Secrets. `<state-dir>/credentials/<namespace>/<name>/` holds the PEM files under
// a TLS Secret's key names: `tls.crt` (certificate chain), `tls.key` (private key) and `ca.crt` (CA
// bundle), or Istio's generic `cert`, `key` and `cacert`. The directory is watched: a change is pushed
// like a config change. A credential travels only in the snapshots of the proxies whose clusters use it.
import { type FSWatcher, mkdirSync, readdirSync, readFileSync, watch } from 'node:fs';
import path from 'node:path';
import type { Credential } from '../compile/mesh-index.ts';
import type { Logger } from '../lib/log.ts';

const FILES: [keyof Credential, string[]][] = [
  ['certificateChain', ['tls.crt', 'cert']],
  ['privateKey', ['tls.key', 'key']],
  ['caCertificates', ['ca.crt', 'cacert']],
];

function readCredential(dir: string): Credential {
  const c: Credential = {};
  for (const [field, names] of FILES) {
    for (const n of names) {
      try {
        c[field] = readFileSync(path.join(dir, n), 'utf8');
        break;
      } catch {
        // Not this name: try the next one.
      }
    }
  }
  return c;
}

export class CredentialStore {
  readonly dir: string;
  private current = new Map<string, Credential>();
  private text = '';
  private readonly listeners: (() => void)[] = [];
  private readonly watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly log: Logger;

  constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.log = log;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.load();
    try {
      this.watcher = watch(dir, { recursive: true }, () => this.soon());
    } catch (err) {
      log.warn('credential store not watched: changes need a restart', { dir, error: String(err) });
    }
  }

  /** By `namespace/name`. */
  get states(): ReadonlyMap<string, Credential> {
    return this.current;
  }

  onChange(cb: () => void): void {
    this.listeners.push(cb);
  }

  private soon(): void {
    clearTimeout(this.timer);
    // Files are written one by one: read them once the writes settle.
    this.timer = setTimeout(() => {
      if (this.load()) for (const cb of this.listeners) cb();
    }, 50);
    this.timer.unref();
  }

  /** Reads the whole store; true when it changed. */
  private load(): boolean {
    const next = new Map<string, Credential>();
    for (const ns of entries(this.dir)) {
      for (const name of entries(path.join(this.dir, ns))) {
        next.set(`${ns}/${name}`, readCredential(path.join(this.dir, ns, name)));
      }
    }
    const text = JSON.stringify([...next]);
    if (text === this.text) return false;
    this.text = text;
    this.current = next;
    this.log.info('credential store read', { credentials: next.size });
    return true;
  }

  close(): void {
    clearTimeout(this.timer);
    this.watcher?.close();
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}
