// Transparent capture for `trellis up`, as Istio's init container sets it up in a pod: every workload
// instance (app + sidecar) gets a network namespace of its own, joined by a veth pair to a bridge this
// runtime creates, with nftables rules that send the app's outbound TCP to its sidecar's outbound port
// and every inbound TCP connection to the sidecar's mTLS listener. Addresses come from a /24 that is
// unique per `trellis up` on the machine (reserved like ports.ts reserves ports), so parallel runs never
// collide; every name is derived from that subnet's number and is at most 15 characters (IFNAMSIZ).
//
//   root namespace: bridge trl<N> 10.213.<N>.1/24, gateways, control plane (127.0.0.1)
//   netns trl<N>-<i>: eth0 10.213.<N>.<i+2>, default route via the bridge; app and sidecar
//
// The control plane stays on 127.0.0.1: connections from the bridge to its xds port are DNATed there
// (route_localnet on the bridge alone), and the sidecars name it `trellis-control-plane`, which its
// serving certificate carries and each netns's hosts file maps to the bridge address.
import { execFile } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TrellisError } from '../lib/errors.ts';
import { alive } from './ports.ts';

const run = promisify(execFile);

export type CaptureMode = 'auto' | 'netns' | 'explicit';
export const CAPTURE_MODES: readonly CaptureMode[] = ['auto', 'netns', 'explicit'];

/** The name the sidecars know the control plane by (a DNS SAN of its serving certificate). */
export const CONTROL_PLANE_NAME = 'trellis-control-plane';

/** What a run set up, in `<state>/capture.json`: the next `up` on the state dir removes it if still there. */
export interface CaptureRecord {
  subnet: number;
  bridge: string;
  table: string;
  namespaces: string[];
}

/** Why capture cannot work on this machine, or undefined when it may (creating the netns decides). */
export async function captureUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'trellis up is not running as root';
  for (const [tool, args, pkg] of [
    ['ip', ['-V'], 'iproute2'],
    ['nft', ['--version'], 'nftables'],
    ['unshare', ['--version'], 'util-linux'],
  ] as const) {
    try {
      await run(tool, args);
    } catch {
      return `${tool} is not installed (Debian package ${pkg})`;
    }
  }
  return undefined;
}

async function sh(cmd: string, args: string[], input?: string): Promise<void> {
  try {
    if (input === undefined) await run(cmd, args);
    else
      await new Promise<void>((resolve, reject) => {
        const child = execFile(cmd, args, (err) => (err ? reject(err) : resolve()));
        child.stdin?.end(input);
      });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new TrellisError(
      'TRL_CAPTURE_SETUP',
      `${cmd} ${args.join(' ')}: ${(e.stderr || e.message).trim()}`,
    );
  }
}

/** Machine-wide: a subnet number is claimed by an exclusive file naming our pid; a dead owner's is taken over. */
function reserveSubnet(dir = path.join(tmpdir(), 'trellis-subnets')): { n: number; release: () => void } {
  mkdirSync(dir, { recursive: true });
  let inUse = '';
  try {
    inUse = readFileSync('/proc/net/fib_trie', 'utf8');
  } catch {
    // Without it, the reservation files alone decide.
  }
  for (let attempt = 0; attempt < 512; attempt++) {
    const n = 1 + Math.floor(Math.random() * 254);
    if (inUse.includes(`10.213.${n}.`)) continue;
    const file = path.join(dir, String(n));
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return { n, release: () => rmSync(file, { force: true }) };
    } catch {
      const owner = Number(readFileSync(file, 'utf8').trim() || 0);
      if (!owner || !alive(owner)) rmSync(file, { force: true });
    }
  }
  throw new TrellisError('TRL_CAPTURE_SETUP', 'no free subnet in 10.213.0.0/16 for the mesh network');
}

export interface CapturedInstance {
  netns: string;
  address: string;
}

export interface CaptureRules {
  /** The sidecar's uid: its own connections are never redirected. */
  proxyUid: number;
  outboundPort: number;
  inboundPort: number;
  adminPort: number;
}

/**
 * The netns's rules, Istio's iptables chains in nftables: the proxy's own traffic and loopback are
 * left alone (an app reaching itself on 127.0.0.1 stays direct), every other TCP connection the app
 * opens goes to the outbound listener; every TCP connection from outside goes to the mTLS inbound
 * listener except those for the sidecar's own ports, so nothing reaches the app around its sidecar.
 */
export function captureRules(r: CaptureRules): string {
  // Loopback-only connections (proxy → app, probes, an app calling itself) need no NAT: untracked,
  // they stay out of the conntrack table the sidecar reads for every captured connection.
  return `table ip trellis {
  chain raw_output {
    type filter hook output priority raw; policy accept;
    ip saddr 127.0.0.0/8 ip daddr 127.0.0.0/8 notrack
  }
  chain output {
    type nat hook output priority -100; policy accept;
    meta skuid ${r.proxyUid} return
    oifname "lo" return
    meta l4proto tcp redirect to :${r.outboundPort}
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    iifname "lo" return
    tcp dport { ${r.inboundPort}, ${r.adminPort} } return
    meta l4proto tcp redirect to :${r.inboundPort}
  }
}
`;
}

/** `/etc/hosts` of one netns: itself, the control plane, and every Service VIP by its names. */
export function hostsFile(
  self: { address: string; hostname: string; namespace: string },
  controlPlane: string,
  vips: { name: string; namespace: string; ip: string }[],
): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `${self.address}\t${self.hostname}`,
    `${controlPlane}\t${CONTROL_PLANE_NAME}`,
  ];
  for (const v of vips) {
    const names = [
      `${v.name}.${v.namespace}`,
      `${v.name}.${v.namespace}.svc`,
      `${v.name}.${v.namespace}.svc.cluster.local`,
    ];
    // The short name means the service of the app's own namespace, as in a pod's search path.
    if (v.namespace === self.namespace) names.unshift(v.name);
    lines.push(`${v.ip}\t${names.join(' ')}`);
  }
  return `${lines.join('\n')}\n`;
}

export class CaptureNetwork {
  readonly subnet: number;
  readonly bridge: string;
  readonly bridgeAddress: string;
  private readonly table: string;
  private readonly recordFile: string;
  private readonly namespaces: string[] = [];
  private readonly release: () => void;

  private constructor(stateDir: string, reservation: { n: number; release: () => void }) {
    this.subnet = reservation.n;
    this.release = reservation.release;
    this.bridge = `trl${this.subnet}`;
    this.bridgeAddress = `10.213.${this.subnet}.1`;
    this.table = `trellis_${this.subnet}`;
    this.recordFile = path.join(stateDir, 'capture.json');
  }

  /** The bridge, and the DNAT that lets sidecars reach the control plane's xds port on 127.0.0.1. */
  static async create(stateDir: string, xdsPort: number): Promise<CaptureNetwork> {
    const net = new CaptureNetwork(stateDir, reserveSubnet());
    try {
      await net.record();
      await sh('ip', ['link', 'add', net.bridge, 'type', 'bridge']);
      await sh('ip', ['addr', 'add', `${net.bridgeAddress}/24`, 'dev', net.bridge]);
      await sh('ip', ['link', 'set', net.bridge, 'up']);
      await writeFile(`/proc/sys/net/ipv4/conf/${net.bridge}/route_localnet`, '1');
      await sh(
        'nft',
        ['-f', '-'],
        `table ip ${net.table} {
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    iifname "${net.bridge}" ip daddr ${net.bridgeAddress} tcp dport ${xdsPort} dnat to 127.0.0.1
  }
}
`,
      );
    } catch (err) {
      await net.destroy();
      throw err;
    }
    return net;
  }

  private async record(): Promise<void> {
    const rec: CaptureRecord = {
      subnet: this.subnet,
      bridge: this.bridge,
      table: this.table,
      namespaces: this.namespaces,
    };
    await writeFile(this.recordFile, `${JSON.stringify(rec)}\n`, { mode: 0o600 });
  }

  /** Instance `index`'s netns, wired to the bridge, with its hosts file; its rules come with `capture`. */
  async add(index: number, hosts: (address: string) => string): Promise<CapturedInstance> {
    if (index > 252)
      throw new TrellisError('TRL_CAPTURE_SETUP', 'more than 253 instances in one mesh network');
    const netns = `trl${this.subnet}-${index}`;
    const veth = `trl${this.subnet}v${index}`;
    const address = `10.213.${this.subnet}.${index + 2}`;
    this.namespaces.push(netns);
    await this.record();
    await sh('ip', ['netns', 'add', netns]);
    await sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    await sh('ip', ['link', 'set', veth, 'master', this.bridge, 'up']);
    await sh('ip', ['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
    await sh('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    await sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    await sh('ip', ['-n', netns, 'route', 'add', 'default', 'via', this.bridgeAddress]);
    // `ip netns exec` bind-mounts every file of /etc/netns/<name>/ over its /etc counterpart.
    const etc = path.join('/etc/netns', netns);
    await mkdir(etc, { recursive: true });
    await writeFile(path.join(etc, 'hosts'), hosts(address), { mode: 0o644 });
    return { netns, address };
  }

  async capture(netns: string, rules: CaptureRules): Promise<void> {
    await sh('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], captureRules(rules));
    // The sidecar's lookup reads the whole per-netns table: closed connections leave it after 1 s
    // instead of 2 min (the kernel's TCP TIME_WAIT itself is unchanged; these timeouts are per netns).
    const timeouts = ['time_wait', 'close', 'close_wait', 'fin_wait', 'last_ack']
      .map((t) => `echo 1 > /proc/sys/net/netfilter/nf_conntrack_tcp_timeout_${t}`)
      .join(' && ');
    await sh('ip', ['netns', 'exec', netns, 'sh', '-c', timeouts]);
  }

  /** Removes the netns (their veths go with them), the bridge, the table and the record. */
  async destroy(): Promise<void> {
    await removeCapture({
      subnet: this.subnet,
      bridge: this.bridge,
      table: this.table,
      namespaces: this.namespaces,
    });
    await rm(this.recordFile, { force: true });
    this.release();
  }
}

async function quietly(cmd: string, args: string[]): Promise<void> {
  await run(cmd, args).catch(() => {});
}

async function removeCapture(rec: CaptureRecord): Promise<void> {
  for (const ns of rec.namespaces) {
    await quietly('ip', ['netns', 'delete', ns]);
    await rm(path.join('/etc/netns', ns), { recursive: true, force: true });
  }
  await quietly('ip', ['link', 'delete', rec.bridge]);
  await quietly('nft', ['delete', 'table', 'ip', rec.table]);
}

/** What a previous run on this state dir left (it was killed): its namespaces, bridge and table go. */
export async function removeStaleCapture(stateDir: string): Promise<boolean> {
  const file = path.join(stateDir, 'capture.json');
  let rec: CaptureRecord;
  try {
    rec = JSON.parse(await readFile(file, 'utf8')) as CaptureRecord;
  } catch {
    return false;
  }
  await rm(file, { force: true });
  const reservation = path.join(tmpdir(), 'trellis-subnets', String(rec.subnet));
  const owner = Number((await readFile(reservation, 'utf8').catch(() => '')).trim() || 0);
  // Another live mesh took the subnet over since: the names are its own now.
  if (owner && owner !== process.pid && alive(owner)) return false;
  await removeCapture(rec);
  rmSync(reservation, { force: true });
  return true;
}
