// Ports for the local runtime. A port the OS hands out for `listen(0)` comes from the ephemeral range,
// where any outgoing connection may take it as its local port between our check and the proxy's bind,
// and a supervised proxy restarted on the same bootstrap would then fail forever. So ports are chosen
// below the ephemeral range, where only explicit listeners live. Each is checked by binding it and
// reserved machine-wide (an exclusive file naming our pid), so two `trellis up` on one machine never
// hand out the same port; a dead owner's reservation is taken over.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

function ephemeralStart(): number {
  try {
    const [lo] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (Number.isInteger(lo) && lo > 21_000) return lo;
  } catch {
    // Not Linux: IANA's dynamic range starts at 49152.
  }
  return 49_152;
}

function canBind(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export class PortAllocator {
  private readonly mine: string[] = [];
  private readonly lo = 20_000;
  private readonly hi = ephemeralStart();
  private readonly host: string;
  private readonly dir: string;

  constructor(host = '127.0.0.1', dir = path.join(tmpdir(), 'trellis-ports')) {
    this.host = host;
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  /** Claims the port for this process unless a live process holds it. */
  private reserve(port: number): boolean {
    const file = path.join(this.dir, String(port));
    for (let tries = 0; tries < 2; tries++) {
      try {
        const fd = openSync(file, 'wx');
        writeSync(fd, String(process.pid));
        closeSync(fd);
        this.mine.push(file);
        return true;
      } catch {
        const owner = Number(readFileSync(file, 'utf8').trim() || 0);
        if (owner && alive(owner)) return false;
        rmSync(file, { force: true });
      }
    }
    return false;
  }

  async next(): Promise<number> {
    const span = this.hi - this.lo;
    for (let attempt = 0; attempt < 500; attempt++) {
      const port = this.lo + Math.floor(Math.random() * span);
      if (!this.reserve(port)) continue;
      if (await canBind(port, this.host)) return port;
    }
    throw new Error(`no free port between ${this.lo} and ${this.hi} on ${this.host}`);
  }

  /** Gives every reservation back (the ports themselves are closed by whoever bound them). */
  release(): void {
    for (const f of this.mine.splice(0)) rmSync(f, { force: true });
  }
}
