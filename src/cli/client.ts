// The CLI's client for the control plane's HTTP API (/api/v1). Finds the API from --api, $TRELLIS_API
// or <state-dir>/control-plane.json; turns JSON error bodies back into TrellisErrors with their issues.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isErrorCode } from '../lib/codes.ts';
import { type Issue, TrellisError } from '../lib/errors.ts';

export interface ConnectOptions {
  api?: string;
  stateDir?: string;
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

  constructor(base: string, timeoutMs = 30_000) {
    this.base = base;
    this.timeoutMs = timeoutMs;
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
      res = await fetch(url, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
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
  return new ApiClient(await resolveApiUrl(o), o.timeoutMs);
}

/** Connection options from the standard `--api` / `--state-dir` flags. */
export function connectionFrom(
  flags: { api?: string; 'state-dir'?: string },
  timeoutMs?: number,
): ConnectOptions {
  return { api: flags.api, stateDir: flags['state-dir'], timeoutMs };
}
