// Unprivileged users for what `trellis up` starts when it runs as root: each app and each proxy gets a
// system user of its own, so file modes keep the control plane's secrets (CA key, admin credential)
// from every app, and each proxy's token from every process but that proxy.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { TrellisError } from '../lib/errors.ts';

const run = promisify(execFile);

export interface ProcessUser {
  name: string;
  uid: number;
  gid: number;
}

/** Linux user names: at most 32 characters of [a-z0-9_-], starting with a letter. */
const MAX_NAME = 32;

export function runsAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/** `trellis-<parts>`, made a valid user name; long ones end in a hash so two never collide. */
export function userName(...parts: string[]): string {
  const name = `trellis-${parts.join('-')}`.toLowerCase().replace(/[^a-z0-9_-]/g, '-');
  if (name.length <= MAX_NAME) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${name.slice(0, MAX_NAME - 9)}-${hash}`;
}

async function lookup(name: string): Promise<ProcessUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

/** The system user `name`, created (no home, no login shell) if it does not exist yet. */
export async function ensureSystemUser(name: string): Promise<ProcessUser> {
  const found = await lookup(name);
  if (found) return found;
  try {
    await run('useradd', [
      '--system',
      '--no-create-home',
      '--user-group',
      '--shell',
      '/usr/sbin/nologin',
      name,
    ]);
  } catch (err) {
    // Another `trellis up` may have created it meanwhile.
    const raced = await lookup(name);
    if (raced) return raced;
    throw new TrellisError(
      'TRL_PLATFORM_USER',
      `cannot create the system user ${name} for a workload process: ${(err as Error).message.trim()}; install useradd (package passwd) or run trellis up as an ordinary user`,
    );
  }
  const created = await lookup(name);
  if (!created) throw new TrellisError('TRL_PLATFORM_USER', `useradd created ${name}, but id cannot find it`);
  return created;
}
