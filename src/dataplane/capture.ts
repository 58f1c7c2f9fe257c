// Transparent capture, the proxy's side: the workload's network namespace redirects the app's outbound
// TCP to the outbound listener (src/platform/capture-network.ts writes the rules), and this recovers
// where each connection was going.
//
// Node cannot read SO_ORIGINAL_DST, so the original destination comes from the netns's own conntrack
// table, /proc/net/nf_conntrack: the redirect left an entry whose reply tuple is the accepted socket
// (`dst=<app addr> sport=<outbound port> dport=<app port>`) and whose original tuple holds the VIP and
// port the app dialled. The file is root's (0440); the runtime opens it as root inside the netns and
// hands the proxy the descriptor, so the proxy's own user can read nothing else it should not.
//
// Cost: the kernel walks its conntrack hash (every bucket, all namespaces, nf_conntrack_buckets) for
// each read, so a lookup costs about as much as that walk: ~0.8 ms per new connection on a host with
// 262144 buckets, measured (bench in the report of the capture branch); nothing per request, since an
// app's keep-alive connection is looked up once. The alternatives: an N-API addon calling getsockopt
// (microseconds, but a C compiler at install time on every machine), or one redirect port per service
// port (no lookup, but the netns rules would have to follow every Service change and the proxy would
// listen on a port per service port). The table read is exact, general (any destination, not only
// VIPs), and needs nothing installed.
import { readSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { ConnectionDestination } from './tcp/proxy.ts';

/** Bounds the walk: a netns's table is small (the runtime keeps closed entries 1 s, see capture-network.ts). */
const MAX_TABLE_BYTES = 16 << 20;

export class ConntrackTable {
  private readonly fd: number;
  private readonly buf = Buffer.allocUnsafe(64 << 10);

  constructor(fd: number) {
    this.fd = fd;
  }

  /**
   * Where the connection from `remote` that was redirected to `localPort` was originally headed. The
   * file is a seq_file: a read returns at most about a page of whole entries, and each read walks the
   * kernel's hash again, so chunks are searched as they come and the walk stops at the entry.
   */
  original(remoteAddress: string, remotePort: number, localPort: number): ConnectionDestination | undefined {
    const key = ` dst=${remoteAddress} sport=${localPort} dport=${remotePort} `;
    // Reads at consecutive offsets continue the walk; a read at 0 starts it afresh.
    for (let pos = 0; pos < MAX_TABLE_BYTES; ) {
      const n = readSync(this.fd, this.buf, 0, this.buf.length, pos);
      if (n === 0) return undefined;
      const chunk = this.buf.toString('latin1', 0, n);
      const at = chunk.indexOf(key);
      if (at >= 0) {
        const line = chunk.slice(chunk.lastIndexOf('\n', at) + 1, at);
        const dst = /\bdst=(\S+) sport=\d+ dport=(\d+)/.exec(line);
        return dst ? { host: dst[1], port: Number(dst[2]) } : undefined;
      }
      pos += n;
    }
    return undefined;
  }
}

/**
 * The destination of a captured socket as the outbound handling names it: a Service's VIP becomes
 * its host (`addresses` from the snapshot), any other address stays as it is.
 */
export function capturedDestination(
  table: ConntrackTable,
  addresses: () => Record<string, string> | undefined,
): (socket: Socket) => ConnectionDestination | undefined {
  return (socket) => {
    const { remoteAddress, remotePort, localPort } = socket;
    if (remoteAddress === undefined || remotePort === undefined || localPort === undefined) return undefined;
    const orig = table.original(remoteAddress, remotePort, localPort);
    if (!orig) return undefined;
    const host = addresses()?.[orig.host];
    return host ? { host, port: orig.port } : orig;
  };
}
