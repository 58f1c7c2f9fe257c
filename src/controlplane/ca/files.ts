// CA material on disk: reads that name the file on failure, and crash-safe writes for private keys.

import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TrellisError } from '../../lib/errors.ts';

export async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw caFileError(path, 'cannot be read', err);
  }
}

export async function readCaFile(path: string, hint?: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new TrellisError('TRL_CA', `CA file ${path} is missing${hint ? `: ${hint}` : ''}`, {
        cause: err,
      });
    }
    throw caFileError(path, 'cannot be read', err);
  }
}

export function caFileError(path: string, problem: string, cause?: unknown, fix?: string): TrellisError {
  const why = cause instanceof Error ? ` (${cause.message})` : '';
  return new TrellisError('TRL_CA', `CA file ${path} ${problem}${why}${fix ? `: ${fix}` : ''}`, { cause });
}

/** Creates `dir` readable only by its owner when it does not exist yet; an existing dir is left as is. */
export async function ensurePrivateDir(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is filtered through the umask; chmod makes 0700 exact.
  if (created !== undefined) await chmod(dir, 0o700);
}

/**
 * Write via temp file + fsync + rename so a crash leaves either the old file or the complete new one,
 * never a truncated key. The temp file is created with the final mode, so the key is never readable by
 * others, not even briefly.
 */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.chmod(mode);
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  // The rename itself is only durable once the directory entry is flushed.
  const dh = await open(dirname(path), 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
