// The embedded durable store: a state directory holding
//   store.log            append-only write-ahead log, one checksummed JSON line per committed revision
//   store.snapshot.json  the whole state at some revision (compaction), replaced atomically
//   store.lock           the pid of the process that has the directory open
// A commit resolves only after its log line is fsynced; on open the snapshot is loaded and the log
// replayed. A record is committed iff its line is complete (ends in a newline) and its checksum matches.

import type { FileHandle } from 'node:fs/promises';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Resource } from '../../api/resource.ts';
import { type ErrorCode, errorMessage, TrellisError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/log.ts';
import { createLogger } from '../../lib/log.ts';
import { deepFreeze, ResourceState, SerialQueue, Watchers } from './state.ts';
import type { Change, CommitResult, ListFilter, Op, ResourceKey, Store, WatchEvent } from './store.ts';
import { keyOf } from './store.ts';

export interface FileStoreOptions {
  /** Compact (write a snapshot, empty the log) once the log holds this many commits. Default 1000. */
  compactAfterCommits?: number;
  /** ...or once the log reaches this many bytes. Default 16 MiB. */
  compactAfterBytes?: number;
  logger?: Logger;
}

export const LOG_FILE = 'store.log';
export const SNAPSHOT_FILE = 'store.snapshot.json';
export const LOCK_FILE = 'store.lock';

// On disk a put carries only the resource (its key follows from it) and a delete only the key;
// `previous` is derivable on replay and would double the log.
type LoggedChange = { type: 'put'; resource: Resource } | { type: 'delete'; key: ResourceKey };
interface LogRecord {
  revision: number;
  changes: LoggedChange[];
}
interface SnapshotRecord {
  revision: number;
  resources: Resource[];
}

// A record is one line of JSON whose last member is the CRC32 of everything before it:
// `{"revision":7,...,"crc32":"1a2b3c4d"}`. The suffix has a fixed length, so checking needs no re-encoding.
const CRC_SUFFIX = /,"crc32":"([0-9a-f]{8})"\}$/;
const CRC_SUFFIX_LEN = ',"crc32":"00000000"}'.length;

export function encodeRecord(record: object): string {
  const body = JSON.stringify(record).slice(0, -1); // drop the closing brace; record has ≥ 1 member
  return `${body},"crc32":"${crc32(body).toString(16).padStart(8, '0')}"}\n`;
}

/** The record on one line (without its newline), or undefined when it is torn or corrupt. */
export function decodeRecord(line: string): Record<string, unknown> | undefined {
  const m = CRC_SUFFIX.exec(line);
  if (!m) return undefined;
  const body = line.slice(0, -CRC_SUFFIX_LEN);
  if (crc32(body).toString(16).padStart(8, '0') !== m[1]) return undefined;
  try {
    const value = JSON.parse(line) as unknown;
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function storeError(code: ErrorCode, message: string, cause?: unknown): TrellisError {
  return new TrellisError(code, message, { cause });
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  let off = 0;
  while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

// The lock file is written in full under a temporary name and then hard-linked into place: link() fails
// if the lock exists, and the lock never exists without its pid in it. A lock whose pid is dead was left
// by a crash and is taken over. (Two processes taking over the same stale lock at the same instant could
// both succeed; the control plane is started by one supervisor, so that race is not handled.)
async function acquireLock(dir: string, logger: Logger): Promise<void> {
  const path = join(dir, LOCK_FILE);
  const tmp = join(dir, `${LOCK_FILE}.${process.pid}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${process.pid}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, path);
        await syncDir(dir);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3)
          throw storeError('TRL_STORE', `cannot lock state directory ${dir}: ${errorMessage(err)}`, err);
      }
      const text = await readFile(path, 'utf8').catch(() => ''); // gone meanwhile: just retry
      const pid = Number.parseInt(text, 10);
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
        const who = pid === process.pid ? `this process (pid ${pid})` : `process ${pid}`;
        throw storeError(
          'TRL_STATE_DIR_IN_USE',
          `state directory ${dir} is in use by ${who}: stop it first, or delete ${path} if that process ` +
            'is not a Trellis control plane',
        );
      }
      if (text)
        logger.warn('taking over the stale lock of a process that no longer runs', { lock: path, pid });
      await unlink(path).catch(() => {});
    }
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

async function releaseLock(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  const text = await readFile(path, 'utf8').catch(() => '');
  if (Number.parseInt(text, 10) === process.pid) await unlink(path).catch(() => {});
}

function replayChanges(changes: LoggedChange[]): Change[] {
  return changes.map((c): Change => {
    if (c.type === 'put') return { type: 'put', key: keyOf(c.resource), resource: deepFreeze(c.resource) };
    if (c.type === 'delete' && c.key) return { type: 'delete', key: c.key };
    throw new Error(`unknown change type ${(c as { type: unknown }).type}`);
  });
}

export class FileStore implements Store {
  readonly dir: string;
  #state: ResourceState;
  #watchers: Watchers;
  #log: FileHandle;
  #logger: Logger;
  #compactAfterCommits: number;
  #compactAfterBytes: number;
  #logCommits: number;
  #logBytes: number;
  // Commits and compactions run one at a time, in call order, so log lines never interleave.
  #queue = new SerialQueue();
  #closed = false;
  // Set when a log write or fsync failed: the log may end in a partial line, and appending after it
  // would turn a recoverable torn tail into mid-file corruption. Reopen to recover.
  #failed: unknown;

  private constructor(
    dir: string,
    state: ResourceState,
    log: FileHandle,
    logCommits: number,
    logBytes: number,
    opts: FileStoreOptions,
    logger: Logger,
  ) {
    this.dir = dir;
    this.#state = state;
    this.#log = log;
    this.#logCommits = logCommits;
    this.#logBytes = logBytes;
    this.#compactAfterCommits = opts.compactAfterCommits ?? 1000;
    this.#compactAfterBytes = opts.compactAfterBytes ?? 16 * 1024 * 1024;
    this.#logger = logger;
    this.#watchers = new Watchers(logger);
  }

  static async open(dir: string, opts: FileStoreOptions = {}): Promise<FileStore> {
    const logger = opts.logger ?? createLogger({ component: 'store' });
    const fail = (err: unknown) =>
      err instanceof TrellisError
        ? err
        : storeError('TRL_STORE', `cannot open state directory ${dir}: ${errorMessage(err)}`, err);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await acquireLock(dir, logger);
    } catch (err) {
      throw fail(err);
    }
    let log: FileHandle | undefined;
    try {
      const state = new ResourceState();
      const snapshotRevision = await loadSnapshot(dir, state);
      log = await open(join(dir, LOG_FILE), 'a', 0o600);
      await syncDir(dir); // make the log's directory entry durable if open() just created it
      const { commits, bytes } = await replayLog(dir, state, snapshotRevision, log, logger);
      return new FileStore(dir, state, log, commits, bytes, opts, logger);
    } catch (err) {
      await log?.close().catch(() => {});
      await releaseLock(dir);
      throw fail(err);
    }
  }

  get revision(): number {
    return this.#state.revision;
  }

  get(key: ResourceKey): Resource | undefined {
    return this.#state.get(key);
  }

  list(filter?: ListFilter): Resource[] {
    return this.#state.list(filter);
  }

  watch(listener: (e: WatchEvent) => void): () => void {
    return this.#watchers.add(listener);
  }

  commit(ops: Op[]): Promise<CommitResult> {
    return this.#enqueue(() => this.#commit(ops));
  }

  /** Writes a snapshot of the current state and empties the log. Runs on its own as commits do. */
  compact(): Promise<void> {
    return this.#enqueue(() => this.#compact());
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue.idle();
    await this.#log.close();
    await releaseLock(this.dir);
  }

  // Closed is checked when called, not when run: work queued before close() still completes.
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(storeError('TRL_STORE_CLOSED', `store ${this.dir} is closed`));
    return this.#queue.run(() => {
      if (this.#failed)
        throw storeError(
          'TRL_STORE',
          `store ${this.dir} failed to write its log earlier (${errorMessage(this.#failed)}); reopen it`,
        );
      return task();
    });
  }

  async #commit(ops: Op[]): Promise<CommitResult> {
    const changes = this.#state.plan(ops);
    if (changes.length === 0) return { revision: this.#state.revision, changes: [] };
    const revision = this.#state.revision + 1;
    const record: LogRecord = {
      revision,
      changes: changes.map((c) =>
        c.type === 'put' ? { type: 'put', resource: c.resource! } : { type: 'delete', key: c.key },
      ),
    };
    const line = Buffer.from(encodeRecord(record));
    try {
      await writeAll(this.#log, line);
      await this.#log.datasync();
    } catch (err) {
      this.#failed = err;
      throw storeError('TRL_STORE', `cannot write ${join(this.dir, LOG_FILE)}: ${errorMessage(err)}`, err);
    }
    this.#state.apply(revision, changes);
    this.#logCommits++;
    this.#logBytes += line.length;
    const event = Object.freeze({ revision, changes: Object.freeze(changes) as Change[] });
    this.#watchers.emit(event);
    if (this.#logCommits >= this.#compactAfterCommits || this.#logBytes >= this.#compactAfterBytes) {
      // The commit is durable already; a failed compaction only leaves a longer log to replay.
      await this.#compact().catch((err) =>
        this.#logger.warn('store compaction failed', { dir: this.dir, error: errorMessage(err) }),
      );
    }
    return event;
  }

  // Snapshot first, then empty the log. A crash in between leaves log records the snapshot already
  // holds; replay skips records at or below the snapshot's revision.
  async #compact(): Promise<void> {
    const snapshot: SnapshotRecord = { revision: this.#state.revision, resources: this.#state.list() };
    const path = join(this.dir, SNAPSHOT_FILE);
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await writeAll(fh, Buffer.from(encodeRecord(snapshot)));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await syncDir(this.dir);
    await this.#log.truncate(0);
    await this.#log.sync();
    this.#logCommits = 0;
    this.#logBytes = 0;
  }
}

async function loadSnapshot(dir: string, state: ResourceState): Promise<number> {
  const path = join(dir, SNAPSHOT_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw storeError('TRL_STORE', `cannot read ${path}: ${errorMessage(err)}`, err);
  }
  // Written by rename, so it is whole or absent: anything else is damage, not a crash.
  const rec = decodeRecord(text.endsWith('\n') ? text.slice(0, -1) : text) as SnapshotRecord | undefined;
  if (!rec || !Number.isInteger(rec.revision) || !Array.isArray(rec.resources))
    throw storeError(
      'TRL_STORE_CORRUPT',
      `${path} is corrupt (checksum mismatch or not a snapshot); restore it from a backup`,
    );
  state.apply(
    rec.revision,
    rec.resources.map((r) => ({ type: 'put', key: keyOf(r), resource: deepFreeze(r) })),
  );
  return rec.revision;
}

async function replayLog(
  dir: string,
  state: ResourceState,
  snapshotRevision: number,
  log: FileHandle,
  logger: Logger,
): Promise<{ commits: number; bytes: number }> {
  const path = join(dir, LOG_FILE);
  const buf = await readFile(path);
  let offset = 0;
  let commits = 0;
  for (let lineNo = 1; offset < buf.length; lineNo++) {
    const nl = buf.indexOf(0x0a, offset);
    const end = nl < 0 ? buf.length : nl;
    const rec =
      nl < 0 ? undefined : (decodeRecord(buf.toString('utf8', offset, end)) as LogRecord | undefined);
    if (!rec || !Number.isInteger(rec.revision) || !Array.isArray(rec.changes)) {
      if (nl < 0 || nl + 1 === buf.length) {
        // The last line is torn: the process died while writing it, so its commit never resolved.
        logger.warn('dropping a torn record at the end of the store log (interrupted write)', {
          file: path,
          line: lineNo,
          bytes: buf.length - offset,
        });
        await log.truncate(offset);
        await log.sync();
        break;
      }
      throw storeError(
        'TRL_STORE_CORRUPT',
        `${path} line ${lineNo} is corrupt (checksum mismatch or not a log record) and later lines ` +
          'depend on it; restore the state directory from a backup',
      );
    }
    if (rec.revision > snapshotRevision) {
      if (rec.revision !== state.revision + 1)
        throw storeError(
          'TRL_STORE_CORRUPT',
          `${path} line ${lineNo} holds revision ${rec.revision} but revision ${state.revision + 1} was ` +
            'expected next; restore the state directory from a backup',
        );
      try {
        state.apply(rec.revision, replayChanges(rec.changes));
      } catch (err) {
        throw storeError('TRL_STORE_CORRUPT', `${path} line ${lineNo}: ${errorMessage(err)}`, err);
      }
      commits++;
    }
    offset = nl + 1;
  }
  return { commits, bytes: offset };
}
