// The generated root and, while it is being replaced, the next one, as files in the CA dir. The phase
// lives in rotation.json, written atomically; it alone says which root signs and which are trusted,
// so a control plane that stops anywhere in a rotation starts again in the same phase with the same
// two roots.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TrellisError } from '../../lib/errors.ts';
import { ensurePrivateDir, fileExists, readCaFile, writeFileAtomic } from './files.ts';
import {
  additionalRoots,
  type CaMaterial,
  loadOrCreateRootPair,
  ROOT_CERT_FILE,
  ROOT_FILES,
  ROOT_KEY_FILE,
  type RootFiles,
} from './root.ts';

export const ROTATION_FILE = 'rotation.json';
export const NEXT_ROOT_FILES: RootFiles = { cert: 'next-root-cert.pem', key: 'next-root-key.pem' };

/**
 * distributing: the next root is in every proxy's trust bundle, the current one still signs;
 * reissuing: the next root signs and every workload gets a certificate from it;
 * retiring: the old root has left the trust bundle; complete: the next root is the root.
 */
export type RotationPhase = 'distributing' | 'reissuing' | 'retiring' | 'complete';

export interface RotationRecord {
  phase: RotationPhase;
  startedAt: string;
  phaseSince: string;
  /** SHA-256 fingerprints of the root being replaced and of its replacement. */
  from: string;
  to: string;
}

const PHASES: RotationPhase[] = ['distributing', 'reissuing', 'retiring', 'complete'];

export async function readRotation(dir: string): Promise<RotationRecord | undefined> {
  const file = join(dir, ROTATION_FILE);
  if (!(await fileExists(file))) return undefined;
  let r: RotationRecord;
  try {
    r = JSON.parse(await readFile(file, 'utf8')) as RotationRecord;
  } catch (err) {
    throw new TrellisError('TRL_CA', `CA file ${file} is not JSON (${String(err)}): restore it from backup`);
  }
  if (!PHASES.includes(r.phase) || typeof r.from !== 'string' || typeof r.to !== 'string')
    throw new TrellisError(
      'TRL_CA',
      `CA file ${file} has no valid rotation phase (${PHASES.join(', ')}): restore it from backup`,
    );
  return r;
}

export function writeRotation(dir: string, r: RotationRecord): Promise<void> {
  return writeFileAtomic(join(dir, ROTATION_FILE), `${JSON.stringify(r, null, 2)}\n`, 0o600);
}

/** Signer and trust bundle of the generated CA in the phase rotation.json names. */
export async function loadGeneratedCa(
  dir: string,
  trustDomain: string,
  now: Date,
): Promise<{ material: CaMaterial; rotation?: RotationRecord }> {
  await ensurePrivateDir(dir);
  const rotation = await readRotation(dir);
  const extra = await additionalRoots(dir);
  const phase = rotation?.phase ?? 'complete';
  if (phase === 'complete') {
    // A next root without a rotation that uses it was never trusted by anyone: it goes.
    await removeNextRoot(dir);
    const root = await loadOrCreateRootPair(dir, ROOT_FILES, trustDomain, now);
    return { material: { signer: root, roots: [root.cert, ...extra] }, rotation };
  }
  const next = await loadOrCreateRootPair(dir, NEXT_ROOT_FILES, trustDomain, now);
  if (next.cert.fingerprint256 !== rotation?.to)
    throw new TrellisError(
      'TRL_CA',
      `CA file ${join(dir, NEXT_ROOT_FILES.cert)} is not the root ${join(dir, ROTATION_FILE)} rotates to: restore both from the same backup`,
    );
  // Retiring: the old root is no longer trusted, and its files may already hold the new root's
  // (promotion was under way): they are not read.
  if (phase === 'retiring') return { material: { signer: next, roots: [next.cert, ...extra] }, rotation };
  const root = await loadOrCreateRootPair(dir, ROOT_FILES, trustDomain, now);
  const roots =
    phase === 'distributing' ? [root.cert, next.cert, ...extra] : [next.cert, root.cert, ...extra];
  return { material: { signer: phase === 'distributing' ? root : next, roots }, rotation };
}

/**
 * The next root becomes the root: written over the old one (key first; a crash between the two
 * leaves rotation.json at retiring, whose loading reads only the next root, and this runs again).
 * The old root's key is gone afterwards.
 */
export async function promoteNextRoot(dir: string): Promise<void> {
  const [key, cert] = await Promise.all([
    readCaFile(join(dir, NEXT_ROOT_FILES.key)),
    readCaFile(join(dir, NEXT_ROOT_FILES.cert)),
  ]);
  await writeFileAtomic(join(dir, ROOT_KEY_FILE), key, 0o600);
  await writeFileAtomic(join(dir, ROOT_CERT_FILE), cert, 0o644);
}

export async function removeNextRoot(dir: string): Promise<void> {
  await rm(join(dir, NEXT_ROOT_FILES.key), { force: true });
  await rm(join(dir, NEXT_ROOT_FILES.cert), { force: true });
}
