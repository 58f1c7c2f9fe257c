// The CLI's client for the control plane's HTTP API (/api/v1). Finds the API from --api, $TRELLIS_API
// or <state-dir>/control-plane.json, and the admin credential from $TRELLIS_ADMIN_TOKEN, --token-file,
// $TRELLIS_ADMIN_TOKEN_FILE or <state-dir>/admin-token; turns JSON error bodies back into TrellisErrors
// with their issues.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isErrorCode } from '../lib/codes.ts';
import { type Issue, TrellisError } from '../lib/errors.ts';

export interface ConnectOptions {
  api?: string;
  stateDir?: string;
  /** A file holding the admin credential; default <state-dir>/admin-token. */
  tokenFile?: string;
  /** Per request; default 30 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const HINT = 'is `trellis up` running? (set --api or TRELLIS_API)';

export function stateDirOf(o: ConnectOptions): string {
  const env = o.env ?? process.env;
  return path.resolve(o.cwd ?? process.cwd(), o.stateDir ?? env.TRELLIS_STATE_DIR ?? '.trellis');
}

/** The API base URL, e.g. `http://127.0.0.1:15014`, without a trailing slash. */
export async function resolveApiUrl(o: ConnectOptions): Promise<string> {
  const env = o.env ?? process.env;
  const explicit = o.api ?? (env.TRELLIS_API || undefined);
  if (explicit) return normalize(explicit);
  const file = path.join(stateDirOf(o), 'control-plane.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new TrellisError(
      'TRL_UNAVAILABLE',
      `cannot reach the Trellis control plane: ${file} does not exist; ${HINT}`,
    );
  }
  let api: unknown;
  try {
    api = (JSON.parse(text) as { api?: unknown }).api;
  } catch {
    api = undefined;
  }
  if (typeof api !== 'string' || api === '') {
    throw new TrellisError(
      'TRL_UNAVAILABLE',
      `${file} has no "api" address; restart \`trellis up\` (or set --api or TRELLIS_API)`,
    );
  }
  return normalize(api);
}

/**
 * The admin credential, or undefined when there is none to read: the API then answers
 * TRL_API_UNAUTHENTICATED, which says where the credential is looked for.
 */
export async function resolveAdminToken(o: ConnectOptions): Promise<string | undefined> {
  const env = o.env ?? process.env;
  if (env.TRELLIS_ADMIN_TOKEN) return env.TRELLIS_ADMIN_TOKEN.trim();
  const named = o.tokenFile ?? (env.TRELLIS_ADMIN_TOKEN_FILE || undefined);
  const file = named ? path.resolve(o.cwd ?? process.cwd(), named) : path.join(stateDirOf(o), 'admin-token');
  try {
    return (await readFile(file, 'utf8')).trim() || undefined;
  } catch (err) {
    if (named)
      throw new TrellisError(
        'TRL_FILE_NOT_FOUND',
        `cannot read the admin credential ${file}: ${(err as Error).message}`,
      );
    return undefined;
  }
}

function normalize(url: string): string {
  const u = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  try {
    new URL(u);
  } catch {
    throw new TrellisError(
      'TRL_INVALID_ARGUMENT',
      `"${url}" is not a URL; expected e.g. http://127.0.0.1:15014`,
    );
  }
  return u.replace(/\/+$/, '');
}

export class ApiClient {
  readonly base: string;
  private readonly timeoutMs: number;
  private readonly token?: string;

  constructor(base: string, timeoutMs = 30_000, token?: string) {
    this.base = base;
    this.timeoutMs = timeoutMs;
    this.token = token;
  }

  /** `parts` are path segments under /api/v1, each URL-encoded. */
  get<T>(...parts: string[]): Promise<T> {
    return this.request<T>('GET', parts);
  }

  post<T>(parts: string[], body: unknown): Promise<T> {
    return this.request<T>('POST', parts, body);
  }

  delete<T>(...parts: string[]): Promise<T> {
    return this.request<T>('DELETE', parts);
  }

  private async request<T>(method: string, parts: string[], body?: unknown): Promise<T> {
    const url = `${this.base}/api/v1/${parts.map(encodeURIComponent).join('/')}`;
    let res: Response;
    try {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      const why = timedOut ? ` (no answer within ${this.timeoutMs} ms)` : '';
      throw new TrellisError(
        'TRL_UNAVAILABLE',
        `cannot reach the Trellis control plane at ${this.base}${why}: ${HINT}`,
        {
          cause: err,
        },
      );
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (res.ok) {
      if (json === undefined) {
        throw new TrellisError(
          'TRL_UNEXPECTED_RESPONSE',
          `${method} ${url}: the control plane answered ${res.status} without JSON`,
        );
      }
      return json as T;
    }
    const e = json as { code?: unknown; message?: unknown; issues?: unknown } | undefined;
    if (e && isErrorCode(e.code) && typeof e.message === 'string') {
      throw new TrellisError(e.code, e.message, {
        issues: Array.isArray(e.issues) ? (e.issues as Issue[]) : undefined,
      });
    }
    const snippet = text.trim().slice(0, 200);
    throw new TrellisError(
      'TRL_UNEXPECTED_RESPONSE',
      `${method} ${url}: the control plane answered ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`,
    );
  }
}

export async function connect(o: ConnectOptions): Promise<ApiClient> {
  const base = await resolveApiUrl(o);
  return new ApiClient(base, o.timeoutMs, await resolveAdminToken(o));
}

/** Connection options from the standard `--api` / `--state-dir` / `--token-file` flags. */
export function connectionFrom(
  flags: { api?: string; 'state-dir'?: string; 'token-file'?: string },
  timeoutMs?: number,
): ConnectOptions {
  return { api: flags.api, stateDir: flags['state-dir'], tokenFile: flags['token-file'], timeoutMs };
}
