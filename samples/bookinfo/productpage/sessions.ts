// Signed-in users, kept in memory: the browser only holds a random, meaningless session id.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const SESSION_COOKIE = 'session';
const MAX_SESSIONS = 10_000;
const TTL_MS = 24 * 60 * 60 * 1000;

interface Session {
  user: string;
  expires: number;
}

export class Sessions {
  private readonly byId = new Map<string, Session>();

  /** Opens a session for `user`; returns its id. */
  open(user: string, now = Date.now()): string {
    if (this.byId.size >= MAX_SESSIONS) {
      // Maps iterate in insertion order: the first entry is the oldest session.
      const oldest = this.byId.keys().next().value;
      if (oldest !== undefined) this.byId.delete(oldest);
    }
    const id = randomBytes(24).toString('base64url');
    this.byId.set(id, { user, expires: now + TTL_MS });
    return id;
  }

  /** The user of the request's session, if it has a live one. */
  userOf(req: IncomingMessage, now = Date.now()): string | undefined {
    const id = sessionId(req);
    if (id === undefined) return undefined;
    const session = this.byId.get(id);
    if (!session) return undefined;
    if (session.expires <= now) {
      this.byId.delete(id);
      return undefined;
    }
    return session.user;
  }

  close(req: IncomingMessage): void {
    const id = sessionId(req);
    if (id !== undefined) this.byId.delete(id);
  }
}

function sessionId(req: IncomingMessage): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export function sessionCookie(id: string): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Lax`;
}

export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`;
}

/** A user name fit to show on a page and to send as the `end-user` header. */
export function validUserName(raw: string | null): string | undefined {
  const name = (raw ?? '').trim();
  if (name === '' || name.length > 64 || !/^[\x20-\x7e]+$/.test(name)) return undefined;
  return name;
}
