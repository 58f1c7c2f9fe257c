// Simulated proxies for the control-plane benchmark: a child process (started by main.ts) that runs
// many proxies, each speaking the real push protocol as the real agent does (src/dataplane/agent):
// a certificate from /v1/certificates with its bootstrap token (CSR, key never sent), then its own
// HTTP/2 session over mutual TLS, `POST /v1/stream`, hello → snapshot or delta → JSON.parse → ACK.
// Modes:
//   parse  (default) JSON.parse every message and rebuild a delta against the snapshot the proxy runs
//          with the agent's applyDelta, then ACK — what the real agent does before applying;
//   build  also run the real ProxyConfig.build on it (what the real proxy applies) before the ACK;
//   light  a diagnostic: read the version, revision, delta base and marker from the text without
//          parsing it, so the simulated proxies' shared core stops being the bottleneck and the
//          control plane's own delivery time shows (a real proxy's parse time is measured by the
//          other modes).
//
// Talks to its parent over the IPC channel: start → ready, await <marker> → round (per-proxy ACK
// times), stats, stop. Times are process.hrtime (CLOCK_MONOTONIC), shared by every process on the host.
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { ProxyNode, ProxySnapshot } from '../../src/compile/snapshot.ts';
import { postToControlPlane } from '../../src/dataplane/agent/post.ts';
import { ProxyConfig } from '../../src/dataplane/config.ts';
import { generateKeyAndCsr } from '../../src/dataplane/identity/csr.ts';
import type { CertificateResponse, ControlPlaneMessage, ProxyMessage } from '../../src/push/protocol.ts';
import { applyDelta, CERTIFICATE_PATH, DELTA_BASE_MISMATCH, PUSH_PATH } from '../../src/push/protocol.ts';
import { MARKER_HEADER, markerOf } from './mesh.ts';

export interface StartMessage {
  type: 'start';
  xds: string;
  rootCertPem: string;
  /** Each proxy's bootstrap token, by proxy id, as the platform registered it. */
  tokens: Record<string, string>;
  trustDomain: string;
  nodes: ProxyNode[];
  mode: SimMode;
  /** HTTP/2 receive window (stream and connection); undefined keeps Node's default, as the agent does. */
  windowBytes?: number;
  timeoutMs: number;
}
export type SimMode = 'parse' | 'build' | 'light';
export interface AwaitMessage {
  type: 'await';
  marker: string;
  timeoutMs: number;
}
export type ParentMessage = StartMessage | AwaitMessage | { type: 'stats' } | { type: 'stop' };

export interface SimStats {
  /** Messages received: whole snapshots and deltas. */
  snapshots: number;
  deltas: number;
  acks: number;
  nacks: number;
  bytes: number;
  maxSnapshotBytes: number;
  maxDeltaBytes: number;
  /** Process CPU time (user + system), seconds. */
  cpuS: number;
  disconnected: number;
  errors: string[];
}
export interface RoundReply {
  type: 'round';
  marker: string;
  /** Per proxy: µs (monotonic clock) its ACK for a snapshot carrying the marker was written, or null. */
  ackUs: (number | null)[];
  /** Per proxy: µs the snapshot carrying the marker had fully arrived, or null. */
  receivedUs: (number | null)[];
  /** Per proxy: µs it spent on that snapshot, from JSON.parse to the ACK written, or null. */
  handleUs: (number | null)[];
  /** Proxies whose snapshot with the marker had a revision older than the others (should not happen). */
  revisions: number[];
}
export type ChildMessage =
  | { type: 'ready'; certMs: number; connectMs: number }
  | RoundReply
  | { type: 'stats'; stats: SimStats }
  | { type: 'failed'; error: string };

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

class SimProxy {
  readonly node: ProxyNode;
  session?: ClientHttp2Session;
  stream?: ClientHttp2Stream;
  /** The version it ACKed last, and (except in light mode) that snapshot: the base of deltas. */
  running?: string;
  snapshot?: ProxySnapshot;
  /** marker → [received µs, ACK written µs, revision, µs spent from parse to ACK] */
  readonly seen = new Map<string, [number, number, number, number]>();
  closed = false;
  constructor(node: ProxyNode) {
    this.node = node;
  }
}

const stats: SimStats = {
  snapshots: 0,
  deltas: 0,
  acks: 0,
  nacks: 0,
  bytes: 0,
  maxSnapshotBytes: 0,
  maxDeltaBytes: 0,
  cpuS: 0,
  disconnected: 0,
  errors: [],
};
let proxies: SimProxy[] = [];
let mode: SimMode = 'parse';
/** marker → how many proxies have ACKed a snapshot carrying it. */
const reached = new Map<string, number>();
/** Resolvers waiting for a marker to reach every proxy. */
const waiters = new Set<() => void>();

function send(msg: ChildMessage): void {
  process.send?.(msg);
}

function note(error: string): void {
  if (stats.errors.length < 20) stats.errors.push(error);
}

/** Runs fn over items with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function write(p: SimProxy, msg: ProxyMessage): void {
  if (p.stream && !p.stream.closed) p.stream.write(`${JSON.stringify(msg)}\n`);
}

/**
 * Lines waiting to be handled. Reading comes first: a finished line is queued and handled from
 * setImmediate, a few milliseconds' worth per turn of the event loop, so every stream keeps being read
 * (and its HTTP/2 window reopened) while proxies take turns on the one core they share. That is as
 * close as one process gets to each proxy having its own CPU; the receive time is when the last byte
 * arrived.
 */
const queue: { p: SimProxy; line: Buffer; received: number }[] = [];
let head = 0;
let draining = false;
const SLICE_US = 5_000;

function enqueue(p: SimProxy, line: Buffer): void {
  queue.push({ p, line, received: nowUs() });
  if (!draining) {
    draining = true;
    setImmediate(drain);
  }
}

function drain(): void {
  const until = nowUs() + SLICE_US;
  do {
    const item = queue[head];
    queue[head++] = undefined as never;
    handle(item.p, item.line, item.received);
  } while (head < queue.length && nowUs() < until);
  if (head === queue.length) {
    queue.length = 0;
    head = 0;
    draining = false;
  } else {
    setImmediate(drain);
  }
}

function handle(p: SimProxy, line: Buffer, received: number): void {
  const started = nowUs();
  stats.bytes += line.length;
  if (line.subarray(0, 16).toString('latin1') === '{"type":"delta",') {
    stats.deltas++;
    stats.maxDeltaBytes = Math.max(stats.maxDeltaBytes, line.length);
  } else {
    stats.snapshots++;
    stats.maxSnapshotBytes = Math.max(stats.maxSnapshotBytes, line.length);
  }
  let snap: { version: string; revision: number; marker?: string };
  if (mode === 'light') {
    const { base, ...read } = lightRead(line);
    if (base !== undefined && base !== p.running) {
      nack(p, read.version, `${DELTA_BASE_MISMATCH}: runs ${p.running}, not ${base}`);
      return;
    }
    snap = read;
  } else {
    let msg: ControlPlaneMessage;
    try {
      msg = JSON.parse(line.toString('utf8')) as ControlPlaneMessage;
    } catch {
      note(`${p.node.id}: malformed message`);
      return;
    }
    // The trust bundle: a simulated proxy holds no certificate to check it against.
    if (msg.type === 'trust') return;
    const version = msg.type === 'snapshot' ? msg.snapshot.version : msg.delta.version;
    let full: ProxySnapshot;
    try {
      full = msg.type === 'snapshot' ? msg.snapshot : applyDelta(p.snapshot, msg.delta);
      if (mode === 'build' && version !== p.running) ProxyConfig.build(full);
    } catch (err) {
      nack(p, version, err instanceof Error ? err.message : String(err));
      return;
    }
    p.snapshot = full;
    snap = { version, revision: full.revision, marker: markerOf(full) };
  }
  p.running = snap.version;
  write(p, { type: 'ack', version: snap.version });
  const acked = nowUs();
  stats.acks++;
  const marker = snap.marker;
  if (marker !== undefined && !p.seen.has(marker)) {
    p.seen.set(marker, [received, acked, snap.revision, acked - started]);
    reached.set(marker, (reached.get(marker) ?? 0) + 1);
    for (const w of waiters) w();
  }
}

function nack(p: SimProxy, version: string, reason: string): void {
  stats.nacks++;
  note(`${p.node.id}: NACK ${version}: ${reason}`);
  write(p, { type: 'nack', version, reason });
}

const MARKER_NEEDLE = Buffer.from(`{"name":"${MARKER_HEADER}","match":{"exact":"`);

/**
 * Light mode: version, revision and a delta's base from the message's head, the marker found by a
 * string search (a delta carries the hub's virtual host whenever it changed).
 */
function lightRead(line: Buffer): { version: string; revision: number; base?: string; marker?: string } {
  const head = line.subarray(0, 400).toString('latin1');
  const version = /"version":"([^"]*)"/.exec(head)?.[1] ?? '';
  const revision = Number(/"revision":(\d+)/.exec(head)?.[1] ?? 0);
  const base = /^\{"type":"delta","delta":\{"base":"([^"]*)"/.exec(head)?.[1];
  const at = line.indexOf(MARKER_NEEDLE);
  if (at === -1) return { version, revision, base };
  const from = at + MARKER_NEEDLE.length;
  return { version, revision, base, marker: line.subarray(from, line.indexOf('"', from)).toString('utf8') };
}

function connect(o: StartMessage, p: SimProxy, tls: { key: string; cert: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(o.xds, {
      ca: o.rootCertPem,
      key: tls.key,
      cert: tls.cert,
      // The agent's defaults (64 KiB windows) unless the benchmark asks for larger ones.
      ...(o.windowBytes ? { settings: { initialWindowSize: o.windowBytes } } : {}),
    });
    if (o.windowBytes) session.on('connect', () => session.setLocalWindowSize(o.windowBytes!));
    p.session = session;
    session.on('error', (err) => {
      note(`${p.node.id}: session: ${err.message}`);
      reject(err);
    });
    session.on('close', () => {
      if (!p.closed) stats.disconnected++;
      p.closed = true;
    });
    const stream = session.request({
      ':method': 'POST',
      ':path': PUSH_PATH,
      'content-type': 'application/x-ndjson',
      authorization: `Bearer ${o.tokens[p.node.id]}`,
    });
    p.stream = stream;
    stream.on('error', (err) => note(`${p.node.id}: stream: ${err.message}`));
    stream.on('response', (h) => {
      // Setup: a proxy reads nothing until all are connected. HTTP/2 flow control then holds the
      // control plane at one snapshot in flight per proxy instead of every proxy re-reading a new one
      // for each proxy that joins (each changes everyone's endpoints). Measurements start later.
      stream.pause();
      if (Number(h[':status']) === 200) resolve();
      else reject(new Error(`${p.node.id}: push stream refused with ${h[':status']}`));
    });
    write(p, { type: 'hello', node: p.node });
    // Bytes are split into lines by a byte search and only a whole line is decoded (a string per
    // 16 KiB chunk and a re-scan of the partial line would cost more than the parse).
    let partial: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => {
      let start = 0;
      for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
        partial.push(chunk.subarray(start, nl));
        const line = partial.length === 1 ? partial[0] : Buffer.concat(partial);
        partial = [];
        if (line.length > 0) enqueue(p, line);
        start = nl + 1;
      }
      if (start < chunk.length) partial.push(chunk.subarray(start));
    });
  });
}

async function start(o: StartMessage): Promise<void> {
  mode = o.mode;
  proxies = o.nodes.map((n) => new SimProxy(n));
  // One certificate per identity (namespace, service account), shared by the proxies that hold it.
  const t0 = performance.now();
  const byIdentity = new Map<string, SimProxy[]>();
  for (const p of proxies) {
    const id = `spiffe://${o.trustDomain}/ns/${p.node.namespace}/sa/${p.node.serviceAccount}`;
    byIdentity.set(id, [...(byIdentity.get(id) ?? []), p]);
  }
  const tlsOf = new Map<string, { key: string; cert: string }>();
  await pool([...byIdentity.keys()], 8, async (id) => {
    const first = byIdentity.get(id)![0].node;
    const { keyPem, csrPem } = await generateKeyAndCsr(id);
    const body = JSON.stringify({
      csr: csrPem,
      namespace: first.namespace,
      serviceAccount: first.serviceAccount,
    });
    const res = JSON.parse(
      await postToControlPlane(
        o.xds,
        o.rootCertPem,
        CERTIFICATE_PATH,
        body,
        { token: o.tokens[first.id] },
        o.timeoutMs,
      ),
    ) as CertificateResponse;
    tlsOf.set(id, { key: keyPem, cert: res.certChain });
  });
  const t1 = performance.now();
  const entries = [...byIdentity].flatMap(([id, ps]) => ps.map((p) => [id, p] as const));
  await pool(entries, 32, ([id, p]) => connect(o, p, tlsOf.get(id)!));
  for (const p of proxies) p.stream?.resume();
  send({ type: 'ready', certMs: t1 - t0, connectMs: performance.now() - t1 });
}

function awaitMarker(m: AwaitMessage): void {
  const done = () => (reached.get(m.marker) ?? 0) >= proxies.length;
  const reply = () => {
    waiters.delete(check);
    clearTimeout(timer);
    const rows = proxies.map((p) => p.seen.get(m.marker));
    send({
      type: 'round',
      marker: m.marker,
      ackUs: rows.map((r) => r?.[1] ?? null),
      receivedUs: rows.map((r) => r?.[0] ?? null),
      handleUs: rows.map((r) => r?.[3] ?? null),
      revisions: [...new Set(rows.filter((r) => r).map((r) => r![2]))],
    });
  };
  const check = () => {
    if (done()) reply();
  };
  const timer = setTimeout(reply, m.timeoutMs);
  waiters.add(check);
  check();
}

function stop(): void {
  for (const p of proxies) {
    p.closed = true;
    p.session?.destroy();
  }
  process.disconnect?.();
  setTimeout(() => process.exit(0), 200).unref();
}

process.on('message', (m: ParentMessage) => {
  if (m.type === 'start') {
    start(m).catch((err: unknown) => send({ type: 'failed', error: String(err) }));
  } else if (m.type === 'await') {
    awaitMarker(m);
  } else if (m.type === 'stats') {
    const u = process.cpuUsage();
    stats.cpuS = (u.user + u.system) / 1e6;
    send({ type: 'stats', stats });
  } else if (m.type === 'stop') {
    stop();
  }
});
process.on('disconnect', () => process.exit(0));
