// The control plane's JWKS resolver, as istiod's: every remote key set a RequestAuthentication names
// (its `jwksUri`, else OpenID discovery at `<issuer>/.well-known/openid-configuration`) is fetched here,
// never by a proxy, and handed to compile like the registry. Key sets are refreshed every
// `refreshMs` (Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL, 20 min); a failed refresh keeps the last
// good keys and is retried sooner, and a key set never fetched has none, so its issuer's tokens are
// refused (fail closed). A change of keys triggers a push (onChange).
//
// What a fetch may reach (GHSA-fgw5-hp8f-xfhc: the control plane as an SSRF tool): http and https only,
// no redirects, a bounded answer within the rule's `timeout`, and never a link-local or cloud metadata
// address (169.254.0.0/16, fe80::/10, fd00:ec2::254, 100.100.100.200), checked on the address the
// name resolves to. Loopback stays allowed: the local runtime and tests run their issuers there.
import { lookup } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import type { JWTRule, RequestAuthenticationSpec } from '../api/kinds/index.ts';
import type { Resource } from '../api/resource.ts';
import { kindKey } from '../api/resource.ts';
import { parseDuration } from '../api/schema.ts';
import type { JwksState } from '../compile/mesh-index.ts';
import { jwksSources } from '../compile/request-authentication.ts';
import { errorMessage } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';

/** Istio's default JWKS fetch timeout (`jwtRules[].timeout`). */
export const DEFAULT_FETCH_TIMEOUT_MS = 5000;
/** PILOT_JWT_PUB_KEY_REFRESH_INTERVAL's default. */
export const DEFAULT_REFRESH_MS = 20 * 60_000;
/** A key set larger than this is refused. */
export const MAX_JWKS_BYTES = 1 << 20;

const RA = kindKey('security.istio.io/v1', 'RequestAuthentication');

const metadata = new BlockList();
metadata.addSubnet('169.254.0.0', 16, 'ipv4');
metadata.addSubnet('fe80::', 10, 'ipv6');
metadata.addAddress('fd00:ec2::254', 'ipv6');
metadata.addAddress('100.100.100.200', 'ipv4');

/** Whether a key set may be fetched from this address. */
export function fetchableAddress(address: string): boolean {
  const mapped = address.toLowerCase().startsWith('::ffff:') ? address.slice(7) : address;
  const family = isIP(mapped);
  if (family === 0) return false;
  return !metadata.check(mapped, family === 4 ? 'ipv4' : 'ipv6');
}

const refused = (address: string) =>
  new Error(`address ${address} is link-local or a cloud metadata service: key sets are not fetched from it`);

/** dns.lookup, refusing the addresses above (with `all`, as Node's connect asks for it, any of them). */
const guardedLookup: LookupFunction = (hostname, options, callback) => {
  lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, '', 0);
    const bad = addresses.find((a) => !fetchableAddress(a.address));
    if (bad) return callback(Object.assign(refused(bad.address), { code: 'EACCES' }), '', 0);
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0].address, addresses[0].family);
  });
};

/** GETs `url` within the limits above; the body as text. */
export function fetchBounded(url: string, timeoutMs: number, maxBytes = MAX_JWKS_BYTES): Promise<string> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return reject(new Error(`${url} is not a URL`));
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      return reject(new Error(`${url}: only http and https are fetched`));
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    // Node connects to an IP literal without a lookup: check it here.
    if (isIP(host) && !fetchableAddress(host)) return reject(refused(host));
    const get = u.protocol === 'https:' ? https.get : http.get;
    const req = get(u, { lookup: guardedLookup, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`${url} answered ${res.statusCode} (redirects are not followed)`));
      }
      if (Number(res.headers['content-length'] ?? 0) > maxBytes) {
        res.destroy();
        return reject(new Error(`${url}: the answer is larger than ${maxBytes} bytes`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) {
          res.destroy();
          reject(new Error(`${url}: the answer is larger than ${maxBytes} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('error', (err) =>
      reject(
        err.name === 'TimeoutError' || err.name === 'AbortError'
          ? new Error(`${url}: no answer within ${timeoutMs} ms`)
          : new Error(`${url}: ${errorMessage(err)}`),
      ),
    );
  });
}

/** A fetched key set, checked and re-serialized so equal keys give an equal snapshot. */
function keySet(text: string, url: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${url} is not JSON`);
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0)
    throw new Error(`${url} is not a JSON Web Key Set with keys`);
  return JSON.stringify({ keys });
}

interface Source {
  key: string;
  issuer: string;
  jwksUri?: string;
  timeoutMs: number;
  timer?: NodeJS.Timeout;
  failures: number;
  /** Stops a fetch that finishes after the source was dropped. */
  dropped: boolean;
}

export interface JwksResolverOptions {
  log: Logger;
  refreshMs?: number;
  /** The first retry after a failed fetch; it doubles up to `refreshMs`. */
  retryMs?: number;
}

export class JwksResolver {
  /** By source (`jwksSource`): what compile reads. */
  readonly states = new Map<string, JwksState>();
  private readonly sources = new Map<string, Source>();
  private readonly listeners: (() => void)[] = [];
  private readonly log: Logger;
  private readonly refreshMs: number;
  private readonly retryMs: number;

  constructor(o: JwksResolverOptions) {
    this.log = o.log;
    this.refreshMs = o.refreshMs ?? DEFAULT_REFRESH_MS;
    this.retryMs = Math.min(o.retryMs ?? 1000, this.refreshMs);
  }

  onChange(cb: () => void): void {
    this.listeners.push(cb);
  }

  /** Fetches the key sets `resources` need that it does not have yet, and forgets the rest. */
  sync(resources: readonly Resource[]): void {
    const policies = resources.filter(
      (r) => kindKey(r.apiVersion, r.kind) === RA,
    ) as Resource<RequestAuthenticationSpec>[];
    const timeout = (rule: JWTRule) =>
      (rule.timeout && parseDuration(rule.timeout)) || DEFAULT_FETCH_TIMEOUT_MS;
    const wanted = jwksSources(policies, timeout);
    for (const [key, s] of this.sources) {
      if (wanted.has(key)) continue;
      s.dropped = true;
      clearTimeout(s.timer);
      this.sources.delete(key);
      this.states.delete(key);
    }
    for (const [key, w] of wanted) {
      const have = this.sources.get(key);
      if (have) {
        have.timeoutMs = w.timeoutMs;
        continue;
      }
      const s: Source = { key, ...w, failures: 0, dropped: false };
      this.sources.set(key, s);
      void this.refresh(s);
    }
  }

  private async refresh(s: Source): Promise<void> {
    const before = this.states.get(s.key);
    let next: JwksState;
    try {
      const url = s.jwksUri ?? (await this.discover(s));
      next = { jwks: keySet(await fetchBounded(url, s.timeoutMs), url) };
      s.failures = 0;
    } catch (err) {
      s.failures++;
      const error = `key set for ${s.issuer} not fetched: ${errorMessage(err)}`;
      this.log.warn('jwks fetch failed', { issuer: s.issuer, source: s.key, error, kept: !!before?.jwks });
      // The last good keys stay in use.
      next = before?.jwks !== undefined ? before : { error };
    }
    if (s.dropped) return;
    this.states.set(s.key, next);
    const delay =
      s.failures === 0 ? this.refreshMs : Math.min(this.retryMs * 2 ** (s.failures - 1), this.refreshMs);
    s.timer = setTimeout(() => void this.refresh(s), delay);
    s.timer.unref();
    if (next.jwks !== before?.jwks || (next.jwks === undefined && next.error !== before?.error)) {
      if (next.jwks !== undefined && next.jwks !== before?.jwks)
        this.log.info('jwks updated', { issuer: s.issuer, source: s.key });
      for (const cb of this.listeners) cb();
    }
  }

  /** OpenID discovery: the issuer's `jwks_uri`. */
  private async discover(s: Source): Promise<string> {
    const url = `${s.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    let doc: unknown;
    try {
      doc = JSON.parse(await fetchBounded(url, s.timeoutMs));
    } catch (err) {
      throw err instanceof SyntaxError ? new Error(`${url} is not JSON`) : err;
    }
    const uri = (doc as { jwks_uri?: unknown } | null)?.jwks_uri;
    if (typeof uri !== 'string') throw new Error(`${url} names no jwks_uri`);
    return uri;
  }

  close(): void {
    for (const s of this.sources.values()) {
      s.dropped = true;
      clearTimeout(s.timer);
    }
    this.sources.clear();
  }
}
