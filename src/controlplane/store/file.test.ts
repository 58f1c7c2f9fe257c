import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { captureLogger, runStoreSuite, vs, vsKey } from '../../../test/support/store-suite.ts';
import type { Resource } from '../../api/resource.ts';
import { type ErrorCode, TrellisError } from '../../lib/errors.ts';
import type { FileStoreOptions } from './file.ts';
import { decodeRecord, FileStore, LOCK_FILE, LOG_FILE, SNAPSHOT_FILE } from './file.ts';

let root: string;
let n = 0;
const freshDir = () => join(root, `state-${++n}`);
const openQuiet = (dir: string, opts: FileStoreOptions = {}) =>
  FileStore.open(dir, { logger: captureLogger(), ...opts });

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'trellis-store-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

// A small compaction threshold so that the contract suite also runs across compactions.
runStoreSuite('FileStore', () => openQuiet(freshDir(), { compactAfterCommits: 4 }));

const putOp = (resource: Resource) => ({ type: 'put' as const, resource });
const logLines = async (dir: string) =>
  (await readFile(join(dir, LOG_FILE), 'utf8')).split('\n').filter(Boolean);
const isStoreError =
  (code: ErrorCode, ...fragments: string[]) =>
  (err: unknown) => {
    assert.ok(err instanceof TrellisError);
    assert.equal(err.code, code);
    for (const f of fragments)
      assert.ok(err.message.includes(f), `${JSON.stringify(err.message)} lacks ${f}`);
    return true;
  };

async function commitSome(dir: string, count: number, opts: FileStoreOptions = {}) {
  const s = await openQuiet(dir, opts);
  for (let i = 1; i <= count; i++) await s.commit([putOp(vs(`r${i}`)), putOp(vs('shared', { i }))]);
  const list = s.list();
  await s.close();
  return list;
}

describe('FileStore durability', () => {
  it('reopening keeps every resource, its metadata and the revision', async () => {
    const dir = freshDir();
    const s = await openQuiet(dir);
    await s.commit([putOp(vs('a')), putOp(vs('b'))]);
    await s.commit([putOp(vs('a', { hosts: ['a2'] }))]);
    await s.commit([{ type: 'delete', key: vsKey('b') }]);
    const list = s.list();
    await s.close();
    const s2 = await openQuiet(dir);
    assert.equal(s2.revision, 3);
    assert.deepEqual(s2.list(), list);
    assert.equal(s2.get(vsKey('a'))!.metadata.generation, 2);
    // Identical content is still a no-op after the JSON round trip through disk.
    assert.deepEqual(await s2.commit([putOp(vs('a', { hosts: ['a2'] }))]), { revision: 3, changes: [] });
    assert.equal((await s2.commit([putOp(vs('c'))])).revision, 4);
    await s2.close();
  });

  it('compacts into a snapshot after N commits and reopens from snapshot + log', async () => {
    const dir = freshDir();
    const list = await commitSome(dir, 10, { compactAfterCommits: 3 });
    const snap = decodeRecord((await readFile(join(dir, SNAPSHOT_FILE), 'utf8')).trimEnd());
    assert.equal(snap?.revision, 9);
    assert.equal((await logLines(dir)).length, 1, 'revision 10 is in the log');
    const s = await openQuiet(dir);
    assert.equal(s.revision, 10);
    assert.deepEqual(s.list(), list);
    await s.close();
  });

  it('compacts by log size too, and on demand', async () => {
    const dir = freshDir();
    const s = await openQuiet(dir, { compactAfterBytes: 1 });
    await s.commit([putOp(vs('a'))]);
    assert.deepEqual(await logLines(dir), []);
    await s.close();
    const s2 = await openQuiet(dir);
    await s2.commit([putOp(vs('b'))]);
    await s2.compact();
    assert.deepEqual(await logLines(dir), []);
    await s2.close();
    const s3 = await openQuiet(dir);
    assert.equal(s3.revision, 2);
    assert.equal(s3.list().length, 2);
    await s3.close();
  });

  it('skips log records the snapshot already holds (crash between snapshot and log truncation)', async () => {
    const dir = freshDir();
    const list = await commitSome(dir, 3);
    const log = await readFile(join(dir, LOG_FILE));
    const s = await openQuiet(dir);
    await s.compact();
    await s.close();
    await writeFile(join(dir, LOG_FILE), log);
    const s2 = await openQuiet(dir);
    assert.equal(s2.revision, 3);
    assert.deepEqual(s2.list(), list);
    await s2.close();
  });

  it('drops a torn last line with a warning and keeps working', async () => {
    const dir = freshDir();
    const list = await commitSome(dir, 3);
    const size = (await stat(join(dir, LOG_FILE))).size;
    await appendFile(join(dir, LOG_FILE), '{"revision":4,"changes":[{"type":"put","reso');
    const logger = captureLogger();
    const s = await FileStore.open(dir, { logger });
    assert.equal(s.revision, 3);
    assert.deepEqual(s.list(), list);
    assert.ok(logger.records.some((r) => r.level === 'warn' && /torn/.test(r.msg)));
    assert.equal((await stat(join(dir, LOG_FILE))).size, size, 'the torn bytes were truncated away');
    await s.commit([putOp(vs('after'))]);
    await s.close();
    const s2 = await openQuiet(dir);
    assert.equal(s2.revision, 4);
    assert.ok(s2.get(vsKey('after')));
    await s2.close();
  });

  it('drops a complete last line whose checksum does not match', async () => {
    const dir = freshDir();
    await commitSome(dir, 3);
    const text = await readFile(join(dir, LOG_FILE), 'utf8');
    await writeFile(join(dir, LOG_FILE), text.replace(/"i":3/, '"i":4'));
    const s = await openQuiet(dir);
    assert.equal(s.revision, 2);
    assert.deepEqual(s.get(vsKey('shared'))!.spec, { i: 2 });
    await s.close();
  });

  it('refuses to open when a line in the middle is corrupt, naming the file and line', async () => {
    const dir = freshDir();
    await commitSome(dir, 3);
    const text = await readFile(join(dir, LOG_FILE), 'utf8');
    await writeFile(join(dir, LOG_FILE), text.replace(/"i":2/, '"i":9'));
    const where = `${join(dir, LOG_FILE)} line 2`;
    await assert.rejects(openQuiet(dir), isStoreError('TRL_STORE_CORRUPT', where, 'corrupt'));
    // The failed open released its lock: trying again reports the same problem, not a lock.
    await assert.rejects(openQuiet(dir), isStoreError('TRL_STORE_CORRUPT', where));
  });

  it('refuses a corrupt snapshot', async () => {
    const dir = freshDir();
    await commitSome(dir, 4, { compactAfterCommits: 2 });
    const text = await readFile(join(dir, SNAPSHOT_FILE), 'utf8');
    await writeFile(join(dir, SNAPSHOT_FILE), text.replace('"r1"', '"r9"'));
    await assert.rejects(
      openQuiet(dir),
      isStoreError('TRL_STORE_CORRUPT', join(dir, SNAPSHOT_FILE), 'corrupt'),
    );
  });

  it('creates the directory 0700 and its files 0600', async () => {
    const dir = freshDir();
    await commitSome(dir, 2, { compactAfterCommits: 1 });
    const s = await openQuiet(dir);
    const mode = async (f: string) => (await stat(f)).mode & 0o777;
    assert.equal(await mode(dir), 0o700);
    for (const f of [LOG_FILE, SNAPSHOT_FILE, LOCK_FILE]) assert.equal(await mode(join(dir, f)), 0o600, f);
    await s.close();
  });

  it('close waits for queued commits, releases the lock and refuses further commits', async () => {
    const dir = freshDir();
    const s = await openQuiet(dir);
    const pending = s.commit([putOp(vs('a'))]);
    await s.close();
    assert.equal((await pending).revision, 1);
    await assert.rejects(s.commit([putOp(vs('b'))]), isStoreError('TRL_STORE_CLOSED', 'closed'));
    await assert.rejects(stat(join(dir, LOCK_FILE)), { code: 'ENOENT' });
  });
});

// A child process that opens a store and then either holds it or commits 3-resource transactions
// forever, printing each revision once its commit has resolved.
const CHILD = `
import { FileStore } from ${JSON.stringify(pathToFileURL(join(import.meta.dirname, 'file.ts')).href)};
const [dir, mode] = process.argv.slice(2);
const quiet = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const store = await FileStore.open(dir, { compactAfterCommits: 7, logger: quiet });
process.stdout.write('ready\\n');
if (mode === 'hold') setInterval(() => {}, 1000);
else for (let i = store.revision + 1; ; i++) {
  const ops = ['a', 'b', 'c'].map((s) => ({ type: 'put', resource: {
    apiVersion: 'networking.istio.io/v1', kind: 'VirtualService',
    metadata: { name: 'tx' + i + '-' + s, namespace: 'default' }, spec: { tx: i, pad: 'x'.repeat(300) } } }));
  const { revision } = await store.commit(ops);
  process.stdout.write(revision + '\\n');
}
`;

async function startChild(
  dir: string,
  mode: 'hold' | 'write',
): Promise<{ child: ChildProcess; lines: string[] }> {
  const script = join(root, 'child.mjs');
  await writeFile(script, CHILD);
  const child = spawn(process.execPath, [script, dir, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  const deadline = Date.now() + 10_000;
  while (!lines.includes('ready')) {
    if (child.exitCode !== null) throw new Error(`child exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error('child did not start');
    await sleep(10);
  }
  return { child, lines };
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** The revision of the last complete, valid record on disk, read independently of FileStore. */
async function lastCompleteRevision(dir: string): Promise<number> {
  const snap = await readFile(join(dir, SNAPSHOT_FILE), 'utf8').catch(() => '');
  let revision = snap ? (decodeRecord(snap.trimEnd())!.revision as number) : 0;
  const text = await readFile(join(dir, LOG_FILE), 'utf8');
  const complete = text
    .slice(0, text.lastIndexOf('\n') + 1)
    .split('\n')
    .filter(Boolean);
  for (const line of complete) {
    const rec = decodeRecord(line);
    if (!rec) break;
    revision = Math.max(revision, rec.revision as number);
  }
  return revision;
}

describe('FileStore across processes', () => {
  it('a SIGKILLed writer leaves whole transactions only', async () => {
    const dir = freshDir();
    for (let round = 0; round < 3; round++) {
      const { child, lines } = await startChild(dir, 'write');
      while (lines.length < 2) await sleep(5); // 'ready' and one commit
      await sleep(300);
      await kill(child);
      const acked = Number(lines.at(-1));
      const expected = await lastCompleteRevision(dir);
      const s = await openQuiet(dir);
      assert.equal(s.revision, expected, 'revision = last complete record');
      assert.ok(s.revision >= acked, `acknowledged revision ${acked} survived (have ${s.revision})`);
      const all = s.list();
      assert.equal(all.length, 3 * s.revision, 'no partial transaction');
      for (let i = 1; i <= s.revision; i++)
        for (const suffix of ['a', 'b', 'c']) {
          const r = s.get(vsKey(`tx${i}-${suffix}`));
          assert.ok(r, `tx${i}-${suffix} present`);
          assert.equal((r.spec as { tx: number }).tx, i);
          assert.equal(r.metadata.resourceVersion, String(i));
        }
      await s.close();
    }
  });

  it('refuses a directory locked by a live process and takes over the lock of a dead one', async () => {
    const dir = freshDir();
    await commitSome(dir, 2);
    const { child } = await startChild(dir, 'hold');
    try {
      await assert.rejects(
        openQuiet(dir),
        isStoreError('TRL_STATE_DIR_IN_USE', `in use by process ${child.pid}`, join(dir, LOCK_FILE)),
      );
    } finally {
      await kill(child);
    }
    assert.equal((await readFile(join(dir, LOCK_FILE), 'utf8')).trim(), String(child.pid), 'stale lock left');
    const logger = captureLogger();
    const s = await FileStore.open(dir, { logger });
    assert.equal(s.revision, 2);
    assert.ok(logger.records.some((r) => r.level === 'warn' && /stale lock/.test(r.msg)));
    assert.equal((await readFile(join(dir, LOCK_FILE), 'utf8')).trim(), String(process.pid));
    // The same process cannot open it twice either.
    await assert.rejects(openQuiet(dir), isStoreError('TRL_STATE_DIR_IN_USE', 'this process'));
    await s.close();
  });
});
