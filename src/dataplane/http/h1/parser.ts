// A strict, incremental HTTP/1.1 request parser for the sidecar's app-facing listeners, where it replaces
// llhttp for speed. It is at least as strict as llhttp without lenient flags: anything that two parsers
// could frame differently (CL with TE, repeated lengths, coding lists, bare CR or LF, obs-fold, space
// before the colon, loose chunk lines) is an error, never a guess, so nothing can be smuggled past us.
// It accepts two things llhttp refuses, both valid by the RFCs and neutral to framing: methods outside
// llhttp's fixed table, and BWS in chunk extensions (parser.test.ts checks that these are the only two).
//
// The head is read line by line over a latin1 string view of the bytes (one view per chunk, not per
// line). A line split across chunks is copied into a small carry buffer until its LF arrives, so total
// work stays linear even when a client sends one byte per segment, and every check runs in stream order
// on whole lines: the same bytes give the same result (or the same error) however they are split.

import { type ErrorCode, statusOf } from '../../../lib/codes.ts';
import { authorityProblem } from '../authority.ts';

/** Envoy's defaults (max_request_headers_kb 60, max_headers_count 100); HTTP/2 listeners use them too. */
export const MAX_HEAD_BYTES = 60 * 1024;
export const MAX_HEADERS = 100;

export interface RequestHead {
  method: string;
  target: string;
  minor: 0 | 1;
  /** Flat [name, value, ...]: names as sent, values without leading/trailing OWS. */
  rawHeaders: string[];
  /** RFC 9112 §9.3: 1.1 persists unless `Connection: close`; 1.0 only with `Connection: keep-alive`. */
  keepAlive: boolean;
  /** The framing the headers declare; with `upgrade` the parser stops at the head and reads no body. */
  body: 'none' | 'length' | 'chunked';
  contentLength: number;
  /**
   * CONNECT, or `Connection: upgrade` together with an Upgrade header other than a lone `h2c`: as
   * Envoy's codec does, an h2c upgrade is not offered, and the request is read as a plain one.
   */
  upgrade: boolean;
  /** `Expect: 100-continue` in an HTTP/1.1 request (RFC 9110 §10.1.1: ignored in 1.0). */
  expectContinue: boolean;
}

export interface RequestEvents {
  onHead(head: RequestHead): void;
  /** Decoded (de-chunked) body bytes; often a subarray of the chunk given to execute(). */
  onBody(chunk: Buffer): void;
  /** Flat like rawHeaders; only for chunked bodies that have trailer fields. */
  onTrailers(trailers: string[]): void;
  onEnd(): void;
}

export class ParseError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ParseError';
    this.code = code;
    this.status = statusOf(code);
  }
}

const HTAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const DQUOTE = 0x22;
const COMMA = 0x2c;
const SLASH = 0x2f;
const COLON = 0x3a;
const SEMI = 0x3b;
const EQUALS = 0x3d;
const BACKSLASH = 0x5c;
const DEL = 0x7f;

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** RFC 9112 §2.2 asks servers to skip "at least one" empty line before a request; a few is plenty. */
const MAX_EMPTY_LINES = 8;
/** The first latin1 view of a chunk: typical heads fit, and converting a little body too is cheaper than
 * searching for the blank line first. Longer heads get a second view that ends at their blank line. */
const VIEW_BYTES = 2048;
/** A chunk-size line with its extensions; Node caps extensions at 16 KiB too (CVE-2024-22019). */
const MAX_CHUNK_LINE = 16 * 1024;

function table(chars: string, ranges: [number, number][] = []): Uint8Array {
  const t = new Uint8Array(256);
  for (const ch of chars) t[ch.charCodeAt(0)] = 1;
  for (const [lo, hi] of ranges) t.fill(1, lo, hi + 1);
  return t;
}
const ALNUM: [number, number][] = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x61, 0x7a],
];
/** RFC 9110 §5.6.2 tchar. */
const TCHAR = table("!#$%&'*+-.^_`|~", ALNUM);
/** RFC 3986 authority without userinfo: unreserved, sub-delims, ':', pct-encoded, IP-literal brackets. */
const AUTHORITY = table("-._~!$&'()*+,;=:%[]", ALNUM);
const HEX = new Uint8Array(256).fill(255);
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX[0x41 + i] = HEX[0x61 + i] = 10 + i;

// What the parser is reading.
const HEAD = 0;
const BODY = 1; // Content-Length body
const CHUNK_LINE = 2; // chunk-size [ext] CRLF, byte by byte (sub-state in `sub`)
const CHUNK_DATA = 3;
const CHUNK_END = 4; // the CRLF after chunk data
const TRAILERS = 5;
const END = 6; // message complete, onEnd not delivered yet (pause can fall in between)
const TUNNEL = 7; // after an upgrade: the connection no longer carries HTTP/1

// Chunk line sub-states (RFC 9112 §7.1.1: chunk-size *( BWS ";" BWS name [ BWS "=" BWS value ] ) CRLF).
const C_SIZE = 0;
const C_SIZE_BWS = 1;
const C_NAME_START = 2;
const C_NAME = 3;
const C_NAME_BWS = 4;
const C_VALUE_START = 5;
const C_TOKEN = 6;
const C_QUOTED = 7;
const C_QUOTED_ESC = 8;
const C_QUOTED_END = 9;
const C_VALUE_BWS = 10;
const C_LF = 11;

const CONN_CLOSE = 1;
const CONN_KEEP_ALIVE = 2;
const CONN_UPGRADE = 4;

function fail(code: ErrorCode, message: string): never {
  throw new ParseError(code, message);
}

function hex(c: number): string {
  return '0x' + c.toString(16).padStart(2, '0');
}

/** Quotes untrusted text for an error message: short, and nothing unprintable. */
function show(s: string): string {
  const cut = s.length > 40 ? s.slice(0, 40) + '...' : s;
  return JSON.stringify(cut).replace(/[\u007f-\u00ff]/g, (ch) => '\\x' + ch.charCodeAt(0).toString(16));
}

/** Case-insensitive match of t[at..] against a lowercase literal; callers validate the chars first, so
 * the `| 0x20` fold cannot turn a CTL into '-' or a digit. */
function eqi(t: string, at: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) {
    if ((t.charCodeAt(at + k) | 0x20) !== lower.charCodeAt(k)) return false;
  }
  return true;
}

function isAlpha(c: number): boolean {
  return (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
}

/** RFC 9112 §3.2 request-target forms, checked at least as strictly as llhttp's URL parser. */
function targetProblem(method: string, t: string, s: number, e: number): string | null {
  const c0 = t.charCodeAt(s);
  if (method === 'CONNECT') {
    // authority-form: uri-host ":" port
    let colon = -1;
    for (let i = s; i < e; i++) {
      const c = t.charCodeAt(i);
      if (AUTHORITY[c] !== 1) return `CONNECT needs host:port, found ${hex(c)}`;
      if (c === COLON) colon = i;
    }
    if (colon <= s || colon === e - 1) return 'CONNECT needs host:port';
    for (let i = colon + 1; i < e; i++) {
      const c = t.charCodeAt(i);
      if (c < 0x30 || c > 0x39) return 'CONNECT needs a numeric port';
    }
    return null;
  }
  if (c0 === SLASH) return null;
  if (c0 === 0x2a) return e - s === 1 && method === 'OPTIONS' ? null : '"*" is only for OPTIONS';
  // absolute-form, as llhttp reads it: ALPHA scheme "://" authority, then "/", "?" or the end
  let i = s;
  while (i < e && isAlpha(t.charCodeAt(i))) i++;
  if (i === s || !t.startsWith('://', i)) return 'expected "/path", "scheme://authority/path" or "*"';
  const a = i + 3;
  let j = a;
  while (j < e && AUTHORITY[t.charCodeAt(j)] === 1) j++;
  if (j === a) return 'empty authority';
  if (j < e && t.charCodeAt(j) !== SLASH && t.charCodeAt(j) !== 0x3f) {
    // '@' lands here: userinfo in an http(s) URI is to be treated as an error (RFC 9110 §4.2.4)
    return `invalid character ${hex(t.charCodeAt(j))} in the authority`;
  }
  return null;
}

export class RequestParser {
  private readonly events: RequestEvents;
  private readonly maxHeadBytes: number;
  private readonly maxHeaders: number;
  private state = HEAD;
  private paused = false;
  private error: unknown = null;

  // The head or trailer section being read.
  private view = ''; // latin1 text of the chunk being executed from viewBase; pipelined heads share it
  private viewBase = 0;
  private carry: Buffer | null = null; // a line split across chunks, up to its LF
  private carryLen = 0;
  private headBytes = 0; // request line + fields + trailers, CRLFs included
  private lineNo = 0; // of the section; the request line is 1
  private emptyLines = 0;
  private fields = 0;
  private method = '';
  private target = '';
  private minor: 0 | 1 = 1;
  private rawHeaders: string[] = [];
  private trailers: string[] | null = null;
  private hosts = 0;
  private contentLength = -1;
  private te = false;
  private connection = 0;
  private upgradeHeader = false;
  private upgradeH2c = false;
  private expect = false;
  private tunnelNext = false;
  private closing = false; // the last message ended the connection's persistence

  // The body.
  private remaining = 0;
  private sub = 0;
  private digits = 0;
  private lineBytes = 0;
  private chunkNo = 0;

  constructor(events: RequestEvents, limits: { maxHeadBytes?: number; maxHeaders?: number } = {}) {
    this.events = events;
    this.maxHeadBytes = limits.maxHeadBytes ?? MAX_HEAD_BYTES;
    this.maxHeaders = limits.maxHeaders ?? MAX_HEADERS;
  }

  /** True between messages: nothing of a next request received yet (empty lines aside). */
  get idle(): boolean {
    return this.state === HEAD && this.lineNo === 0 && this.carryLen === 0 && this.error === null;
  }

  pause(): void {
    this.paused = true;
  }

  /** After resume(), call execute() with the unconsumed remainder, even an empty one: an onEnd may be due. */
  resume(): void {
    this.paused = false;
  }

  /**
   * Parses as much of `chunk` as it can and returns how many bytes it consumed: all of them, unless a
   * callback called pause() (it stops right after that event) or a message with `upgrade` ended (it
   * stops right after the head; the rest belongs to the tunnel, and later calls consume nothing).
   * Throws ParseError on any violation; after that, or after a callback threw, every call throws again.
   */
  execute(chunk: Buffer): number {
    if (this.error !== null) throw this.error;
    if (this.paused) return 0;
    try {
      return this.run(chunk);
    } catch (err) {
      // A half-parsed stream cannot be resynchronised: the connection must close.
      this.error = err;
      throw err;
    } finally {
      this.view = '';
    }
  }

  private run(chunk: Buffer): number {
    const len = chunk.length;
    let off = 0;
    for (;;) {
      const state = this.state;
      if (state === END) {
        this.end();
        if (this.paused || this.state === TUNNEL) return off;
        continue;
      }
      if (state === TUNNEL) return off;
      if (off >= len) return len;
      switch (state) {
        case HEAD:
        case TRAILERS:
          off = this.lines(chunk, off);
          break;
        case BODY:
        case CHUNK_DATA:
          off = this.data(chunk, off);
          break;
        case CHUNK_LINE:
          off = this.chunkLine(chunk, off);
          break;
        case CHUNK_END:
          off = this.chunkEnd(chunk, off);
          break;
      }
      if (this.paused) return off;
    }
  }

  private end(): void {
    const tunnel = this.tunnelNext;
    this.state = tunnel ? TUNNEL : HEAD;
    this.lineNo = 0;
    this.emptyLines = 0;
    this.headBytes = 0;
    this.fields = 0;
    this.rawHeaders = [];
    this.trailers = null;
    this.hosts = 0;
    this.contentLength = -1;
    this.te = false;
    this.connection = 0;
    this.upgradeHeader = false;
    this.upgradeH2c = false;
    this.expect = false;
    this.chunkNo = 0;
    this.events.onEnd();
  }

  // ---- head and trailer sections

  private lines(chunk: Buffer, off: number): number {
    const section = this.state;
    const len = chunk.length;
    if (this.carryLen > 0) {
      const lf = chunk.indexOf(LF, off);
      const to = lf < 0 ? len : lf + 1;
      this.keep(chunk, off, to);
      if (lf < 0) return len;
      const line = this.carry!.toString('latin1', 0, this.carryLen);
      this.carryLen = 0;
      if (line.length > 4096) this.carry = null; // an idle connection should not pin a large buffer
      this.scan(line, 0);
      if (this.state !== section || to === len) return to;
      off = to;
    }
    let text = this.view;
    let base = this.viewBase;
    if (off < base || off >= base + text.length) {
      base = off;
      text = chunk.toString('latin1', off, Math.min(len, off + VIEW_BYTES));
    }
    let used = this.scan(text, off - base);
    if (this.state === section && used < text.length && base + text.length < len) {
      // The head runs past the first view: view the rest of it, up to its blank line or the limit.
      base += used;
      const blank = chunk.indexOf(CRLFCRLF, base);
      const end = blank >= 0 ? blank + 4 : Math.min(len, base + this.maxHeadBytes - this.headBytes + 1);
      text = chunk.toString('latin1', base, end);
      used = this.scan(text, 0);
    }
    this.view = text;
    this.viewBase = base;
    if (this.state === section && used < text.length) {
      this.keep(chunk, base + used, len);
      return len;
    }
    return base + used;
  }

  private keep(chunk: Buffer, from: number, to: number): void {
    const need = this.carryLen + to - from;
    if (this.headBytes + need > this.maxHeadBytes) this.tooLarge();
    let carry = this.carry;
    if (carry === null || carry.length < need) {
      const grown = Buffer.allocUnsafe(
        Math.min(this.maxHeadBytes, Math.max(need, 2 * (carry?.length ?? 128))),
      );
      if (carry !== null) carry.copy(grown, 0, 0, this.carryLen);
      this.carry = carry = grown;
    }
    chunk.copy(carry, this.carryLen, from, to);
    this.carryLen = need;
  }

  private tooLarge(): never {
    if (this.state === TRAILERS) {
      fail(
        'TRL_HTTP_HEADERS_TOO_LARGE',
        `the head and trailer section together exceed ${this.maxHeadBytes} bytes`,
      );
    }
    if (this.lineNo === 0) {
      fail('TRL_HTTP_URI_TOO_LONG', `request line longer than ${this.maxHeadBytes} bytes`);
    }
    fail('TRL_HTTP_HEADERS_TOO_LARGE', `request head larger than ${this.maxHeadBytes} bytes`);
  }

  /** Reads whole lines of `t` from `p`; returns where it stopped: after the section's blank line, or at
   * the start of a line whose LF has not arrived. */
  private scan(t: string, p: number): number {
    const n = t.length;
    while (p < n) {
      const lf = t.indexOf('\n', p);
      if (lf < 0) return p;
      const size = lf + 1 - p;
      if (this.headBytes + size > this.maxHeadBytes) this.tooLarge();
      this.headBytes += size;
      if (lf === p || t.charCodeAt(lf - 1) !== CR) {
        fail('TRL_HTTP_BARE_LF', `line ${this.lineNo + 1}${this.where()} ends in LF without CR`);
      }
      const s = p;
      const e = lf - 1;
      p = lf + 1;
      if (s === e) {
        if (this.state === HEAD && this.lineNo === 0) {
          if (++this.emptyLines > MAX_EMPTY_LINES) {
            fail(
              'TRL_HTTP_INVALID_REQUEST_LINE',
              `more than ${MAX_EMPTY_LINES} empty lines before a request`,
            );
          }
          continue;
        }
        this.endSection();
        return p;
      }
      this.lineNo++;
      if (this.lineNo === 1 && this.state === HEAD) {
        if (this.closing) {
          // RFC 9112 §9.6: no further requests after "close"; llhttp rejects them too
          fail('TRL_HTTP_DATA_AFTER_CLOSE', 'request after a message that closes the connection');
        }
        this.requestLine(t, s, e);
      } else {
        this.field(t, s, e);
      }
    }
    return p;
  }

  private where(): string {
    return this.state === TRAILERS ? ' of the trailer section' : '';
  }

  private requestLine(t: string, s: number, e: number): void {
    let i = s;
    while (TCHAR[t.charCodeAt(i)] === 1) i++;
    if (i === s || t.charCodeAt(i) !== SP) {
      const c = t.charCodeAt(i);
      fail(
        c === CR ? 'TRL_HTTP_BARE_CR' : 'TRL_HTTP_INVALID_METHOD',
        i === e
          ? `request line ${show(t.slice(s, e))} has no request-target (line 1)`
          : `invalid character ${hex(c)} in the method at column ${i - s + 1} (line 1)`,
      );
    }
    const ts = i + 1;
    let j = ts;
    while (j < e) {
      const c = t.charCodeAt(j);
      if (c <= SP || c >= DEL) break;
      j++;
    }
    const c = t.charCodeAt(j);
    if (j === e) fail('TRL_HTTP_INVALID_VERSION', 'request line has no HTTP version (line 1)');
    if (c !== SP) {
      fail(
        c === CR ? 'TRL_HTTP_BARE_CR' : 'TRL_HTTP_INVALID_TARGET',
        `invalid character ${hex(c)} in the request-target at column ${j - s + 1} (line 1); ` +
          'only visible ASCII is allowed, percent-encode the rest',
      );
    }
    if (j === ts) fail('TRL_HTTP_INVALID_TARGET', 'empty request-target: one space expected (line 1)');
    const vs = j + 1;
    const m = t.charCodeAt(vs + 7);
    if (e - vs === 8 && t.startsWith('HTTP/1.', vs) && (m === 0x30 || m === 0x31)) {
      this.minor = m === 0x31 ? 1 : 0;
    } else {
      const version = t.slice(vs, e);
      if (/^HTTP\/\d\.\d$/.test(version)) {
        fail('TRL_HTTP_VERSION_NOT_SUPPORTED', `${version} is not supported; use HTTP/1.1 or HTTP/1.0`);
      }
      fail(
        version.includes('\r') ? 'TRL_HTTP_BARE_CR' : 'TRL_HTTP_INVALID_VERSION',
        `invalid HTTP version ${show(version)}: expected "HTTP/1.1" or "HTTP/1.0" then CRLF (line 1)`,
      );
    }
    this.method = t.slice(s, i);
    this.target = t.slice(ts, j);
    const problem = targetProblem(this.method, t, ts, j);
    if (problem !== null) {
      fail('TRL_HTTP_INVALID_TARGET', `invalid request-target ${show(this.target)}: ${problem} (line 1)`);
    }
  }

  private field(t: string, s: number, e: number): void {
    let i = s;
    while (TCHAR[t.charCodeAt(i)] === 1) i++;
    if (i === s || t.charCodeAt(i) !== COLON) this.badName(t, s, i, e);
    if (++this.fields > this.maxHeaders) {
      fail(
        'TRL_HTTP_TOO_MANY_HEADERS',
        `more than ${this.maxHeaders} header fields${this.state === TRAILERS ? ' (with trailers)' : ''}`,
      );
    }
    let vs = i + 1;
    while (vs < e) {
      const c = t.charCodeAt(vs);
      if (c !== SP && c !== HTAB) break;
      vs++;
    }
    for (let j = vs; j < e; j++) {
      const c = t.charCodeAt(j);
      if (c < SP ? c !== HTAB : c === DEL) this.badValue(t, s, i, c);
    }
    let ve = e;
    while (ve > vs) {
      const c = t.charCodeAt(ve - 1);
      if (c !== SP && c !== HTAB) break;
      ve--;
    }
    const name = t.slice(s, i);
    const value = vs === ve ? '' : t.slice(vs, ve);
    if (this.state === TRAILERS) {
      // RFC 9110 §6.5.1: framing and routing fields in trailers are how bodies get reinterpreted
      // (llhttp rejects Content-Length there too).
      const n = i - s;
      if (
        (n === 14 && eqi(t, s, 'content-length')) ||
        (n === 17 && eqi(t, s, 'transfer-encoding')) ||
        (n === 4 && eqi(t, s, 'host'))
      ) {
        fail(
          'TRL_HTTP_FORBIDDEN_TRAILER',
          `${name} is not allowed in trailers (trailer line ${this.lineNo})`,
        );
      }
      if (this.trailers === null) this.trailers = [name, value];
      else this.trailers.push(name, value);
      return;
    }
    this.rawHeaders.push(name, value);
    switch (i - s) {
      case 4:
        if (eqi(t, s, 'host')) {
          if (++this.hosts > 1)
            fail('TRL_HTTP_DUPLICATE_HOST', `more than one Host header (line ${this.lineNo})`);
          const problem = authorityProblem(value);
          if (problem !== null)
            fail('TRL_HTTP_INVALID_HOST', `Host ${JSON.stringify(value)}: ${problem} (line ${this.lineNo})`);
        }
        break;
      case 6:
        if (ve - vs === 12 && eqi(t, s, 'expect') && eqi(t, vs, '100-continue')) this.expect = true;
        break;
      case 7:
        if (eqi(t, s, 'upgrade')) {
          // Only a sole `h2c` (in one field) is the HTTP/2 upgrade; with anything else it is an upgrade.
          this.upgradeH2c = !this.upgradeHeader && ve - vs === 3 && eqi(t, vs, 'h2c');
          this.upgradeHeader = true;
        }
        break;
      case 10:
        if (eqi(t, s, 'connection')) this.connectionTokens(t, vs, ve);
        break;
      case 14:
        if (eqi(t, s, 'content-length')) this.contentLengthField(t, vs, ve);
        break;
      case 17:
        if (eqi(t, s, 'transfer-encoding')) this.transferEncoding(t, vs, ve, e);
        break;
    }
  }

  private badName(t: string, s: number, i: number, e: number): never {
    const c = t.charCodeAt(i);
    const line = `(line ${this.lineNo}${this.where()})`;
    if (i === s && (c === SP || c === HTAB)) {
      fail('TRL_HTTP_OBS_FOLD', `line starts with whitespace: obs-fold is not accepted ${line}`);
    }
    if (i === e) fail('TRL_HTTP_INVALID_HEADER_TOKEN', `header line without a colon ${line}`);
    if (c === SP || c === HTAB) {
      fail(
        'TRL_HTTP_INVALID_HEADER_TOKEN',
        `whitespace between header name ${show(t.slice(s, i))} and the colon ${line}`,
      );
    }
    fail(
      c === CR ? 'TRL_HTTP_BARE_CR' : 'TRL_HTTP_INVALID_HEADER_TOKEN',
      `invalid character ${hex(c)} in header name ${show(t.slice(s, i))} ${line}`,
    );
  }

  private badValue(t: string, s: number, i: number, c: number): never {
    fail(
      c === CR ? 'TRL_HTTP_BARE_CR' : 'TRL_HTTP_INVALID_HEADER_VALUE',
      `invalid character ${hex(c)} in the value of header ${show(t.slice(s, i))} (line ${this.lineNo}${this.where()})`,
    );
  }

  private connectionTokens(t: string, vs: number, ve: number): void {
    let a = vs;
    while (a <= ve) {
      let b = a;
      while (b < ve && t.charCodeAt(b) !== COMMA) b++;
      let x = a;
      let y = b;
      while (x < y && (t.charCodeAt(x) === SP || t.charCodeAt(x) === HTAB)) x++;
      while (y > x && (t.charCodeAt(y - 1) === SP || t.charCodeAt(y - 1) === HTAB)) y--;
      const n = y - x;
      if (n === 5 && eqi(t, x, 'close')) this.connection |= CONN_CLOSE;
      else if (n === 10 && eqi(t, x, 'keep-alive')) this.connection |= CONN_KEEP_ALIVE;
      else if (n === 7 && eqi(t, x, 'upgrade')) this.connection |= CONN_UPGRADE;
      a = b + 1;
    }
  }

  private contentLengthField(t: string, vs: number, ve: number): void {
    const line = `(line ${this.lineNo})`;
    if (this.contentLength >= 0) {
      fail('TRL_HTTP_DUPLICATE_CONTENT_LENGTH', `more than one Content-Length header ${line}`);
    }
    if (this.te) {
      fail('TRL_HTTP_CL_TE_CONFLICT', `Content-Length together with Transfer-Encoding ${line}`);
    }
    if (vs === ve) fail('TRL_HTTP_INVALID_CONTENT_LENGTH', `empty Content-Length ${line}`);
    let v = 0;
    for (let j = vs; j < ve; j++) {
      const d = t.charCodeAt(j) - 0x30;
      if (d < 0 || d > 9) {
        fail(
          'TRL_HTTP_INVALID_CONTENT_LENGTH',
          `Content-Length ${show(t.slice(vs, ve))} is not a decimal number ${line}`,
        );
      }
      v = v * 10 + d;
      if (v > Number.MAX_SAFE_INTEGER) {
        fail(
          'TRL_HTTP_INVALID_CONTENT_LENGTH',
          `Content-Length ${show(t.slice(vs, ve))} is too large ${line}`,
        );
      }
    }
    this.contentLength = v;
  }

  private transferEncoding(t: string, vs: number, ve: number, e: number): void {
    const line = `(line ${this.lineNo})`;
    if (this.minor === 0) {
      // RFC 9112 §6.1: a 1.0 peer cannot be trusted to frame by it; the body could be read two ways.
      fail('TRL_HTTP_TE_IN_HTTP10', `Transfer-Encoding in an HTTP/1.0 request ${line}`);
    }
    if (this.te) {
      fail(
        'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
        `more than one Transfer-Encoding header ${line}; only a single "chunked" is supported`,
      );
    }
    if (ve - vs !== 7 || !eqi(t, vs, 'chunked')) {
      fail(
        'TRL_HTTP_UNSUPPORTED_TRANSFER_CODING',
        `unsupported Transfer-Encoding ${show(t.slice(vs, ve))} ${line}; only "chunked" is supported`,
      );
    }
    for (let j = ve; j < e; j++) {
      if (t.charCodeAt(j) === HTAB) {
        // OWS by RFC 9110, but llhttp no longer sees "chunked" then: a classic TE obfuscation, refuse it
        fail('TRL_HTTP_INVALID_TRANSFER_ENCODING', `Transfer-Encoding "chunked" followed by a tab ${line}`);
      }
    }
    if (this.contentLength >= 0) {
      fail('TRL_HTTP_CL_TE_CONFLICT', `Transfer-Encoding together with Content-Length ${line}`);
    }
    this.te = true;
  }

  private endSection(): void {
    if (this.state === TRAILERS) {
      this.state = END;
      if (this.trailers !== null) this.events.onTrailers(this.trailers);
      return;
    }
    const minor = this.minor;
    if (minor === 1 && this.hosts === 0) {
      fail('TRL_HTTP_MISSING_HOST', 'HTTP/1.1 request without a Host header (RFC 9112 §3.2)');
    }
    const conn = this.connection;
    const upgrade =
      this.method === 'CONNECT' || ((conn & CONN_UPGRADE) !== 0 && this.upgradeHeader && !this.upgradeH2c);
    const body = this.te ? 'chunked' : this.contentLength > 0 ? 'length' : 'none';
    const head: RequestHead = {
      method: this.method,
      target: this.target,
      minor,
      rawHeaders: this.rawHeaders,
      keepAlive: (conn & CONN_CLOSE) === 0 && (minor === 1 || (conn & CONN_KEEP_ALIVE) !== 0),
      body,
      contentLength: body === 'length' ? this.contentLength : 0,
      upgrade,
      expectContinue: this.expect && minor === 1,
    };
    this.closing = !head.keepAlive;
    if (upgrade) {
      this.tunnelNext = true;
      this.state = END;
    } else if (body === 'chunked') {
      this.state = CHUNK_LINE;
      this.startChunkLine();
    } else if (body === 'length') {
      this.state = BODY;
      this.remaining = this.contentLength;
    } else {
      this.state = END;
    }
    this.events.onHead(head);
  }

  // ---- bodies

  private data(chunk: Buffer, off: number): number {
    const end = off + Math.min(this.remaining, chunk.length - off);
    this.remaining -= end - off;
    if (this.remaining === 0) {
      if (this.state === BODY) {
        this.state = END;
      } else {
        this.state = CHUNK_END;
        this.sub = 0;
      }
    }
    this.events.onBody(chunk.subarray(off, end));
    return end;
  }

  private startChunkLine(): void {
    this.sub = C_SIZE;
    this.digits = 0;
    this.remaining = 0;
    this.lineBytes = 0;
    this.chunkNo++;
  }

  private chunkLine(chunk: Buffer, off: number): number {
    const len = chunk.length;
    let sub = this.sub;
    for (let i = off; i < len; i++) {
      const c = chunk[i];
      if (++this.lineBytes > MAX_CHUNK_LINE) {
        fail(
          'TRL_HTTP_INVALID_CHUNK',
          `chunk line longer than ${MAX_CHUNK_LINE} bytes (chunk ${this.chunkNo})`,
        );
      }
      switch (sub) {
        case C_SIZE: {
          const v = HEX[c];
          if (v !== 255) {
            if (++this.digits > 16 || this.remaining > (Number.MAX_SAFE_INTEGER - v) / 16) {
              fail('TRL_HTTP_INVALID_CHUNK', `chunk size too large (chunk ${this.chunkNo})`);
            }
            this.remaining = this.remaining * 16 + v;
            continue;
          }
          if (this.digits === 0) this.badChunk(c, 'chunk size');
          if (c === CR) sub = C_LF;
          else if (c === SEMI) sub = C_NAME_START;
          else if (c === SP || c === HTAB) sub = C_SIZE_BWS;
          else this.badChunk(c, 'chunk size');
          continue;
        }
        case C_SIZE_BWS:
        case C_NAME_BWS:
        case C_VALUE_BWS:
          // BWS is only allowed before ";" (or "=" after a name), never before the CRLF
          if (c === SEMI) sub = C_NAME_START;
          else if (c === EQUALS && sub === C_NAME_BWS) sub = C_VALUE_START;
          else if (c === CR) this.badChunk(SP, 'chunk line: whitespace before CRLF');
          else if (c !== SP && c !== HTAB)
            this.badChunk(c, sub === C_SIZE_BWS ? 'chunk size' : 'chunk extension');
          continue;
        case C_NAME_START:
          if (TCHAR[c] === 1) sub = C_NAME;
          else if (c !== SP && c !== HTAB) this.badChunk(c, 'chunk extension name');
          continue;
        case C_VALUE_START:
          if (TCHAR[c] === 1) sub = C_TOKEN;
          else if (c === DQUOTE) sub = C_QUOTED;
          else if (c !== SP && c !== HTAB) this.badChunk(c, 'chunk extension value');
          continue;
        case C_QUOTED:
          if (c === DQUOTE) sub = C_QUOTED_END;
          else if (c === BACKSLASH) sub = C_QUOTED_ESC;
          else if (c < SP ? c !== HTAB : c === DEL) this.badChunk(c, 'quoted chunk extension value');
          continue;
        case C_QUOTED_ESC:
          if (c < SP ? c !== HTAB : c === DEL) this.badChunk(c, 'quoted chunk extension value');
          sub = C_QUOTED;
          continue;
        case C_NAME:
        case C_TOKEN:
        case C_QUOTED_END:
          if (sub !== C_QUOTED_END && TCHAR[c] === 1) continue;
          if (c === EQUALS && sub === C_NAME) sub = C_VALUE_START;
          else if (c === CR) sub = C_LF;
          else if (c === SEMI) sub = C_NAME_START;
          else if (c === SP || c === HTAB) sub = sub === C_NAME ? C_NAME_BWS : C_VALUE_BWS;
          else this.badChunk(c, 'chunk extension');
          continue;
        case C_LF:
          if (c !== LF) fail('TRL_HTTP_BARE_CR', `CR without LF in the size line of chunk ${this.chunkNo}`);
          if (this.remaining === 0) {
            this.state = TRAILERS;
            this.lineNo = 0;
          } else {
            this.state = CHUNK_DATA;
          }
          return i + 1;
      }
    }
    this.sub = sub;
    return len;
  }

  private badChunk(c: number, what: string): never {
    fail(
      c === LF ? 'TRL_HTTP_BARE_LF' : c === CR ? 'TRL_HTTP_BARE_CR' : 'TRL_HTTP_INVALID_CHUNK',
      `invalid character ${hex(c)} in the ${what} (chunk ${this.chunkNo})`,
    );
  }

  private chunkEnd(chunk: Buffer, off: number): number {
    const c = chunk[off];
    if (this.sub === 0) {
      if (c === LF) fail('TRL_HTTP_BARE_LF', `LF without CR after the data of chunk ${this.chunkNo}`);
      if (c !== CR) {
        fail(
          'TRL_HTTP_INVALID_CHUNK',
          `chunk ${this.chunkNo} has more data than its size, or no CRLF after it (found ${hex(c)})`,
        );
      }
      this.sub = 1;
      return off + 1;
    }
    if (c !== LF) fail('TRL_HTTP_BARE_CR', `CR without LF after the data of chunk ${this.chunkNo}`);
    this.state = CHUNK_LINE;
    this.startChunkLine();
    return off + 1;
  }
}
