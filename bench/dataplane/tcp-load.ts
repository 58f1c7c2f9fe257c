// The TCP load generator: ping-pong over raw connections (each sends a message and waits for the
// whole echo before the next), at a fixed rate with per-message latencies, and as fast as it goes.
// h2load and wrk speak only HTTP, so this one is ours; it runs as its own process, pinned like them,
// and prints one JSON result. Through a sidecar's outbound listener the connection opens with
// `CONNECT host:port`, as an app with `https_proxy` does.
import net from 'node:net';
import { parseArgs } from 'node:util';

export interface TcpTarget {
  host: string;
  port: number;
  /** `host:port` to ask for with CONNECT first (a sidecar's outbound listener). */
  connect?: string;
}

export interface TcpRun {
  messages: number;
  failed: number;
  /** Microseconds per round trip. */
  p50: number;
  p90: number;
  p99: number;
  /** Round trips per second. */
  rps: number;
}

const MESSAGE = Buffer.alloc(1024, 'x');

function open(t: TcpTarget): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: t.host, port: t.port, noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      if (!t.connect) return resolve(socket);
      socket.write(`CONNECT ${t.connect} HTTP/1.1\r\nHost: ${t.connect}\r\n\r\n`);
      let head = Buffer.alloc(0);
      const onData = (c: Buffer) => {
        head = Buffer.concat([head, c]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        if (!/^HTTP\/1\.1 200/.test(head.toString('latin1'))) {
          socket.destroy();
          return reject(new Error(`CONNECT ${t.connect}: ${head.subarray(0, end).toString('latin1')}`));
        }
        if (head.length > end + 4) socket.unshift(head.subarray(end + 4));
        resolve(socket);
      };
      socket.on('data', onData);
    });
  });
}

/** One round trip: resolves with its microseconds once all of MESSAGE came back. */
function roundTrip(socket: net.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    let got = 0;
    const onData = (c: Buffer) => {
      got += c.length;
      if (got < MESSAGE.length) return;
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(Number(process.hrtime.bigint() - start) / 1000);
    };
    const onClose = () => {
      socket.off('data', onData);
      reject(new Error('connection closed mid round trip'));
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(MESSAGE);
  });
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : Number.NaN;
}

/**
 * `rps` round trips per second over `connections` connections, each started period/connections
 * apart so the proxy sees an even stream, not bursts; `rps` 0 is as fast as each connection goes.
 */
export async function tcpLoad(
  t: TcpTarget,
  rps: number,
  connections: number,
  seconds: number,
): Promise<TcpRun> {
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(t)));
  const latencies: number[] = [];
  let failed = 0;
  const end = Date.now() + seconds * 1000;
  const periodMs = rps > 0 ? (connections * 1000) / rps : 0;
  await Promise.all(
    sockets.map(async (socket, i) => {
      let next = performance.now() + (periodMs * i) / connections;
      while (Date.now() < end) {
        if (periodMs) {
          const wait = next - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          next += periodMs;
        }
        try {
          latencies.push(await roundTrip(socket));
        } catch {
          failed++;
          return;
        }
      }
    }),
  );
  for (const s of sockets) s.destroy();
  latencies.sort((a, b) => a - b);
  return {
    messages: latencies.length,
    failed,
    p50: quantile(latencies, 0.5),
    p90: quantile(latencies, 0.9),
    p99: quantile(latencies, 0.99),
    rps: latencies.length / seconds,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      connect: { type: 'string' },
      rps: { type: 'string', default: '0' },
      connections: { type: 'string', default: '16' },
      seconds: { type: 'string', default: '5' },
    },
  });
  const target = { host: values.host, port: Number(values.port), connect: values.connect };
  const result = await tcpLoad(
    target,
    Number(values.rps),
    Number(values.connections),
    Number(values.seconds),
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
