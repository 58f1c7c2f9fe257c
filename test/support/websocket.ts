// A small RFC 6455 implementation for tests, written from the RFC so the proxy is checked against an
// independent one: the opening handshake (key and accept), framing with the client's masking and the
// server's none, text and binary messages of any length (7, 16 and 64-bit lengths, fragments), ping
// and pong, and the close handshake, over any duplex: a TCP socket after a 101 or an HTTP/2 stream
// after an extended CONNECT (RFC 8441). A frame masked the wrong way is a protocol error the test sees.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** One frame; `mask` for a client's. */
export function frame(opcode: number, payload: Buffer, mask: boolean, fin = true): Buffer {
  const n = payload.length;
  const len = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const head = Buffer.alloc(len + (mask ? 4 : 0));
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (n < 126) head[1] = n;
  else if (n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  if (!mask) return Buffer.concat([head, payload]);
  head[1] |= 0x80;
  const key = randomBytes(4);
  key.copy(head, len);
  const body = Buffer.alloc(n);
  for (let i = 0; i < n; i++) body[i] = payload[i] ^ key[i & 3];
  return Buffer.concat([head, body]);
}

export interface WsMessage {
  binary: boolean;
  data: Buffer;
}

/** One side of a WebSocket connection over `stream`; `client` masks what it sends. */
export class WsEndpoint {
  readonly stream: Duplex;
  readonly client: boolean;
  /** Frames the other side got wrong (masking, reserved bits, unknown opcodes). */
  readonly errors: string[] = [];
  /** The close code the other side sent, once its close frame came. */
  peerClose: number | undefined;
  /** Bytes received and not yet framed; joined only once a whole frame is there. */
  private chunks: Buffer[] = [];
  private size = 0;
  private fragments: Buffer[] = [];
  private fragmentBinary = false;
  private inbox: WsMessage[] = [];
  private waiting: ((m: WsMessage) => void)[] = [];
  private closeSent = false;
  private onPeerClose: (() => void)[] = [];
  /** Resolves when the stream's readable side ends (the other side's FIN or END_STREAM). */
  readonly ended: Promise<void>;
  /** Resolves when the stream is closed for good. */
  readonly closed: Promise<void>;
  /** What the server does with a message: echo it (the default) or nothing. */
  onMessage: ((m: WsMessage) => void) | undefined;

  constructor(stream: Duplex, client: boolean, head?: Buffer) {
    this.stream = stream;
    this.client = client;
    this.ended = new Promise((r) => stream.once('end', () => r()));
    this.closed = new Promise((r) => stream.once('close', () => r()));
    stream.on('data', (c: Buffer) => this.read(c));
    stream.on('error', () => {});
    if (head?.length) this.read(head);
  }

  send(data: string | Buffer): void {
    const binary = typeof data !== 'string';
    this.stream.write(frame(binary ? BINARY : TEXT, binary ? data : Buffer.from(data), this.client));
  }

  /** Sends a message in `parts` fragments. */
  sendFragmented(data: Buffer, parts: number): void {
    const size = Math.ceil(data.length / parts);
    for (let i = 0; i < parts; i++) {
      const piece = data.subarray(i * size, (i + 1) * size);
      this.stream.write(frame(i === 0 ? BINARY : 0, piece, this.client, i === parts - 1));
    }
  }

  ping(data = Buffer.alloc(0)): void {
    this.stream.write(frame(PING, data, this.client));
  }

  /** Starts the close handshake; resolves with the code of the other side's close frame. */
  close(code = 1000): Promise<number> {
    this.sendClose(code);
    return this.peerClosed();
  }

  peerClosed(): Promise<number> {
    if (this.peerClose !== undefined) return Promise.resolve(this.peerClose);
    return new Promise((r) => this.onPeerClose.push(() => r(this.peerClose!)));
  }

  next(timeoutMs = 10_000): Promise<WsMessage> {
    const m = this.inbox.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no WebSocket message in time')), timeoutMs);
      this.waiting.push((msg) => {
        clearTimeout(t);
        resolve(msg);
      });
    });
  }

  private sendClose(code: number): void {
    if (this.closeSent) return;
    this.closeSent = true;
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    this.stream.write(frame(CLOSE, payload, this.client));
  }

  private read(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    for (;;) {
      if (this.size < 2) return;
      if (this.chunks[0].length < 14 && this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
      let b = this.chunks[0];
      const masked = (b[1] & 0x80) !== 0;
      let n = b[1] & 0x7f;
      let at = 2;
      if (n === 126) {
        if (b.length < 4) return;
        n = b.readUInt16BE(2);
        at = 4;
      } else if (n === 127) {
        if (b.length < 10) return;
        n = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      const keyAt = at;
      if (masked) at += 4;
      if (this.size < at + n) return;
      if (b.length < at + n) b = Buffer.concat(this.chunks);
      let payload = Buffer.from(b.subarray(at, at + n));
      if (masked) for (let i = 0; i < n; i++) payload[i] ^= b[keyAt + (i & 3)];
      const rest = b.subarray(at + n);
      this.chunks = rest.length ? [rest] : [];
      this.size = rest.length;
      // RFC 6455 §5.1: a client masks every frame, a server none.
      if (masked === this.client) this.errors.push(`frame ${masked ? 'masked' : 'unmasked'} the wrong way`);
      if ((b[0] & 0x70) !== 0) this.errors.push('reserved bits set');
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      if (opcode === CLOSE) {
        this.peerClose = n >= 2 ? payload.readUInt16BE(0) : 1005;
        // Echo the close; a server then ends the TCP connection first (§7.1.1).
        this.sendClose(this.peerClose);
        if (!this.client) this.stream.end();
        for (const cb of this.onPeerClose.splice(0)) cb();
      } else if (opcode === PING) this.stream.write(frame(PONG, payload, this.client));
      else if (opcode === PONG) continue;
      else if (opcode === TEXT || opcode === BINARY || opcode === 0) {
        if (opcode !== 0) this.fragmentBinary = opcode === BINARY;
        this.fragments.push(payload);
        if (!fin) continue;
        payload = Buffer.concat(this.fragments);
        this.fragments = [];
        this.deliver({ binary: this.fragmentBinary, data: payload });
      } else this.errors.push(`unknown opcode ${opcode}`);
    }
  }

  private deliver(m: WsMessage): void {
    if (this.onMessage) {
      this.onMessage(m);
      return;
    }
    const w = this.waiting.shift();
    if (w) w(m);
    else this.inbox.push(m);
  }
}

/** What the echo app saw of each handshake, and the server side of each connection. */
export interface EchoApp {
  server: http.Server;
  port: number;
  handshakes: http.IncomingHttpHeaders[];
  urls: string[];
  sockets: WsEndpoint[];
  close(): Promise<void>;
}

/**
 * A WebSocket echo app on Node's http server: every message comes back as it was. A path under
 * `/refuse` answers the handshake with a plain 426; `/slow` answers it after a second.
 */
export async function echoApp(): Promise<EchoApp> {
  const app: EchoApp = {
    server: http.createServer((_req, res) => res.end('plain http')),
    port: 0,
    handshakes: [],
    urls: [],
    sockets: [],
    close: () => {
      for (const ws of app.sockets) ws.stream.destroy();
      app.server.closeAllConnections();
      return new Promise<void>((r) => app.server.close(() => r()));
    },
  };
  app.server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    app.handshakes.push(req.headers);
    app.urls.push(req.url ?? '');
    const key = req.headers['sec-websocket-key'];
    if (
      req.url?.startsWith('/refuse') ||
      typeof key !== 'string' ||
      req.headers['sec-websocket-version'] !== '13'
    ) {
      const text = 'no websocket here\n';
      socket.end(
        `HTTP/1.1 426 Upgrade Required\r\ncontent-type: text/plain\r\ncontent-length: ${text.length}\r\n\r\n${text}`,
      );
      return;
    }
    const accept = () => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${acceptKey(key)}\r\nx-echo-app: yes\r\n\r\n`,
      );
      const ws = new WsEndpoint(socket, false, head);
      ws.onMessage = (m) => (m.binary ? ws.send(m.data) : ws.send(m.data.toString()));
      // A client that half-closes without the close handshake still hears from the app, which then
      // ends its side: a half-close must pass through every proxy without cutting the other way.
      socket.once('end', () => {
        if (ws.peerClose !== undefined) return;
        ws.send('after your end');
        socket.end();
      });
      app.sockets.push(ws);
    };
    if (req.url?.startsWith('/slow')) setTimeout(accept, 1000);
    else accept();
  });
  await new Promise<void>((r) => app.server.listen(0, '127.0.0.1', r));
  app.port = (app.server.address() as AddressInfo).port;
  return app;
}

export interface Handshake {
  status: number;
  headers: Record<string, string>;
  /** The answer's body when it was not a 101. */
  body: string;
  ws: WsEndpoint | undefined;
  socket: net.Socket;
}

/**
 * Opens a WebSocket over HTTP/1.1 to `port` with request-target `target` (absolute form when the
 * proxy is the app's HTTP proxy); a 101 must carry the right Sec-WebSocket-Accept. With `tunnel`,
 * the handshake goes inside a CONNECT to that authority, as a client configured with a proxy sends it.
 */
/** Every client socket `wsConnect` opened, so a suite's teardown can end what a test left open. */
const clientSockets = new Set<net.Socket>();

export function destroyClients(): void {
  for (const s of clientSockets) s.destroy();
  clientSockets.clear();
}

export function wsConnect(
  port: number,
  target: string,
  host: string,
  headers: Record<string, string> = {},
  tunnel?: string,
): Promise<Handshake> {
  const key = randomBytes(16).toString('base64');
  const socket = net.connect({ host: '127.0.0.1', port });
  clientSockets.add(socket);
  socket.once('close', () => clientSockets.delete(socket));
  let head =
    `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n`;
  for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
  if (tunnel) socket.write(`CONNECT ${tunnel} HTTP/1.1\r\nHost: ${tunnel}\r\n\r\n`);
  else socket.write(`${head}\r\n`);
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let connected = !tunnel;
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!connected) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!buf.toString('latin1', 0, end).startsWith('HTTP/1.1 200')) {
          reject(new Error(`CONNECT refused: ${buf.toString('latin1', 0, end)}`));
          return;
        }
        connected = true;
        buf = buf.subarray(end + 4);
        socket.write(`${head}\r\n`);
      }
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      const lines = buf.toString('latin1', 0, end).split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const h: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const colon = l.indexOf(':');
        h[l.slice(0, colon).toLowerCase()] = l.slice(colon + 1).trim();
      }
      const rest = buf.subarray(end + 4);
      if (status === 101) {
        if (h['sec-websocket-accept'] !== acceptKey(key)) {
          reject(new Error(`bad Sec-WebSocket-Accept ${h['sec-websocket-accept']}`));
          return;
        }
        resolve({ status, headers: h, body: '', ws: new WsEndpoint(socket, true, rest), socket });
        return;
      }
      let body = rest.toString();
      socket.on('data', (more: Buffer) => {
        body += more;
      });
      socket.once('close', () => resolve({ status, headers: h, body, ws: undefined, socket }));
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

/**
 * Opens a WebSocket over HTTP/2 with an extended CONNECT (RFC 8441), once the server's SETTINGS
 * allow it; a 200 opens it.
 */
export async function wsConnectH2(
  port: number,
  path: string,
  authority: string,
  protocol = 'websocket',
): Promise<{
  status: number;
  headers: http2.IncomingHttpHeaders;
  ws: WsEndpoint | undefined;
  session: http2.ClientHttp2Session;
}> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    session.once('remoteSettings', (s) =>
      s.enableConnectProtocol ? resolve() : reject(new Error('the server does not offer extended CONNECT')),
    );
  });
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': protocol,
    ':scheme': 'http',
    ':path': path,
    ':authority': authority,
    'sec-websocket-version': '13',
  });
  const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('error', reject);
  });
  const status = Number(headers[':status']);
  return { status, headers, ws: status === 200 ? new WsEndpoint(stream, true) : undefined, session };
}
