// Small TCP apps for the L4 tests, and the client side of an app's explicit proxy: a CONNECT tunnel
// through its sidecar's outbound listener, as `https_proxy` clients open one.
import net, { type AddressInfo, type Socket } from 'node:net';

export interface App {
  server: net.Server;
  port: number;
  /** Connections accepted so far. */
  accepted: number;
}

async function listen(server: net.Server): Promise<App> {
  const app = { server, port: 0, accepted: 0 };
  server.on('connection', () => app.accepted++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  app.port = (server.address() as AddressInfo).port;
  return app;
}

/** Echoes every byte; ends its side when the client ends its own (half-close passed on). */
export function echoApp(): Promise<App> {
  return listen(
    net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => s.destroy());
      s.pipe(s);
    }),
  );
}

/**
 * A Redis-like line protocol: `SET <key> <value>` answers `+OK`, `GET <key>` a bulk string
 * (`$<len>\r\n<value>`) or `$-1`, `PING` `+PONG`, anything else `-ERR`. Lines end in CRLF.
 */
export function kvApp(): Promise<App> {
  const data = new Map<string, string>();
  return listen(
    net.createServer((s) => {
      s.on('error', () => s.destroy());
      let buf = '';
      s.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let nl = buf.indexOf('\r\n');
        while (nl >= 0) {
          const [cmd, key, ...rest] = buf.slice(0, nl).split(' ');
          buf = buf.slice(nl + 2);
          const up = cmd.toUpperCase();
          if (up === 'SET' && key) {
            data.set(key, rest.join(' '));
            s.write('+OK\r\n');
          } else if (up === 'GET' && key) {
            const v = data.get(key);
            s.write(v === undefined ? '$-1\r\n' : `$${Buffer.byteLength(v)}\r\n${v}\r\n`);
          } else if (up === 'PING') s.write('+PONG\r\n');
          else s.write('-ERR unknown command\r\n');
          nl = buf.indexOf('\r\n');
        }
      });
    }),
  );
}

/** A tunnel to `target` through the HTTP proxy on `proxyPort`; rejects unless it answers 200. */
export function connectVia(proxyPort: number, target: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: proxyPort, allowHalfOpen: true });
    s.once('error', reject);
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    let head = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      s.pause();
      const status = head.toString('latin1', 0, head.indexOf('\r\n'));
      if (!/^HTTP\/1\.1 200/.test(status)) {
        s.destroy();
        return reject(new Error(`CONNECT ${target}: ${status}`));
      }
      if (head.length > end + 4) s.unshift(head.subarray(end + 4));
      s.off('error', reject);
      resolve(s);
    };
    s.on('data', onData);
  });
}

/** Everything the socket sends until it closes; `ended` says whether it ended cleanly (FIN). */
export function readAll(s: Socket): Promise<{ data: Buffer; ended: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = false;
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      ended = true;
      // The other side is done: so are we (the tunnel is half-open until both sides end).
      s.end();
    });
    s.on('error', () => {});
    s.on('close', () => resolve({ data: Buffer.concat(chunks), ended }));
    s.resume();
  });
}

/** Writes `line` and waits for the next CRLF-terminated answer (or a bulk string's two lines). */
export function ask(s: Socket, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString('utf8');
      const lines = buf.split('\r\n');
      const complete =
        buf.endsWith('\r\n') && (!buf.startsWith('$') || buf.startsWith('$-1') || lines.length >= 3);
      if (!complete) return;
      s.off('data', onData);
      s.off('close', onClose);
      resolve(buf.trimEnd());
    };
    const onClose = () => reject(new Error(`closed before answering ${line}`));
    s.on('data', onData);
    s.once('close', onClose);
    s.resume();
    s.write(`${line}\r\n`);
  });
}
