import type { CaStatus, RootInfo } from '../../controlplane/ca/rotation.ts';
import { TrellisError } from '../../lib/errors.ts';
import { CONNECTION_FLAGS, durationFlag, maxPositionals, oneOf, parseArgs, UsageError } from '../args.ts';
import { connect, connectionFrom } from '../client.ts';
import { json, table, write, yamlDocs } from '../output.ts';

export const help = `Show the mesh CA, or move the mesh to a new root without an outage.

Usage:
  trellis ca status [flags]
  trellis ca rotate [flags]

status: the root that signs, the roots in the trust bundle, how many workload certificates come from
which root, and the rotation's phase with the proxies it waits for.

rotate: generates a new root (same trust domain) and moves the mesh to it in phases, each entered
only when every proxy is ready for it:
  distributing  the trust bundle holds both roots; waits until every proxy has ACKed it
  reissuing     the new root signs; every proxy renews now; waits until every workload presents a
                certificate from the new root (the control plane's own certificate is re-issued too)
  retiring      the old root leaves the bundle; waits until every proxy has ACKed; then complete
The phase is kept in <state-dir>/ca/rotation.json: a control plane restarted mid-way resumes it.
A second rotate while one runs is refused (TRL_CA_ROTATION_IN_PROGRESS). With a plugged-in CA
(--ca-dir) rotate is refused (TRL_CA_ROTATION_PLUGGED): that root's key is in your PKI.
rotate waits for the rotation to complete, printing each phase; --no-wait returns once it started.

Flags:
  -o, --output <format>   json or yaml (the API's answer as is; default: text)
      --no-wait           rotate: return as soon as the rotation has started
      --timeout <dur>     rotate: how long to wait for it to complete (default 10m; it goes on after)
      --api <url>         control plane API (default $TRELLIS_API, else <state-dir>/control-plane.json)
      --state-dir <dir>   state directory of \`trellis up\` (default $TRELLIS_STATE_DIR, else .trellis)
      --token-file <file> the API's admin credential (default $TRELLIS_ADMIN_TOKEN, else
                          $TRELLIS_ADMIN_TOKEN_FILE, else <state-dir>/admin-token)

Examples:
  trellis ca status
  trellis ca rotate
  trellis ca rotate --no-wait && watch trellis ca status
`;

const FLAGS = {
  output: { type: 'string', short: 'o' },
  'no-wait': { type: 'boolean' },
  timeout: { type: 'string' },
  ...CONNECTION_FLAGS,
} as const;

const short = (fp: string) => (fp.length > 23 ? `${fp.slice(0, 23)}…` : fp);

function roleOf(s: CaStatus, r: RootInfo): string {
  const rot = s.rotation && s.rotation.phase !== 'complete' ? s.rotation : undefined;
  const signing = r.fingerprint === s.signingRoot.fingerprint;
  if (rot && r.fingerprint === rot.from) return signing ? 'signing, being replaced' : 'being retired';
  if (rot && r.fingerprint === rot.to) return signing ? 'signing (new)' : 'new, not signing yet';
  return signing ? 'signing' : 'trusted';
}

export function formatCaStatus(s: CaStatus): string {
  const lines: string[] = [];
  lines.push(
    `Trust domain:  ${s.trustDomain} (${s.mode === 'plugged' ? 'plugged-in CA' : 'generated root'})`,
  );
  lines.push(`Signing root:  ${s.signingRoot.fingerprint}`);
  lines.push(`               ${s.signingRoot.subject}, expires ${s.signingRoot.notAfter}`);
  lines.push('');
  lines.push(`Trust bundle ${s.trustBundle.version} (${s.trustBundle.roots.length} roots):`);
  lines.push(
    table(
      ['ROOT', 'SUBJECT', 'EXPIRES', 'ROLE'],
      s.trustBundle.roots.map((r) => [
        short(r.fingerprint),
        r.subject,
        r.notAfter.slice(0, 10),
        roleOf(s, r),
      ]),
    ).trimEnd(),
  );
  lines.push('');
  const r = s.rotation;
  if (!r) lines.push('Rotation:      none yet');
  else if (r.phase === 'complete')
    lines.push(`Rotation:      complete since ${r.phaseSince} (${short(r.from)} → ${short(r.to)})`);
  else {
    lines.push(`Rotation:      ${r.phase} since ${r.phaseSince} (started ${r.startedAt})`);
    lines.push(`               ${short(r.from)} → ${short(r.to)}`);
    if (r.waitingFor.length === 0) lines.push('               every proxy is ready for the next phase');
    for (const w of r.waitingFor) lines.push(`  waiting for ${w.proxy}: ${w.reason}`);
  }
  lines.push('');
  lines.push('Workload certificates by root (connected proxies):');
  if (s.certificates.length === 0) lines.push('  none connected');
  for (const c of s.certificates)
    lines.push(`  ${c.root === 'none' ? 'no trusted root' : short(c.root)}  ${c.proxies}`);
  if (s.proxies.length > 0) {
    lines.push('');
    lines.push(
      table(
        ['PROXY', 'CONNECTED', 'TRUST BUNDLE', 'CERTIFICATE ROOT', 'CERT EXPIRES'],
        s.proxies.map((p) => [
          p.id,
          p.connected ? 'yes' : 'no',
          p.trustBundle,
          p.certificateRoot ? short(p.certificateRoot) : '-',
          p.notAfter ?? '-',
        ]),
      ).trimEnd(),
    );
  }
  return `${lines.join('\n')}\n`;
}

export async function run(args: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(args, FLAGS, 'ca');
  maxPositionals(positionals, 1, 'ca');
  const [sub] = positionals;
  if (sub !== 'status' && sub !== 'rotate')
    throw new UsageError(
      sub === undefined
        ? 'say what to do: trellis ca status, or trellis ca rotate'
        : `unknown subcommand "${sub}"; use status or rotate`,
      'ca',
    );
  const output = oneOf('-o', flags.output, ['json', 'yaml'] as const, 'ca');
  const timeoutMs = durationFlag(flags.timeout, '10m', 'timeout', 'ca');
  const client = await connect(connectionFrom(flags));
  const show = (s: CaStatus) => {
    if (output === 'json') write(json(s));
    else if (output === 'yaml') write(yamlDocs([s]));
    else write(formatCaStatus(s));
  };
  if (sub === 'status') {
    show(await client.get<CaStatus>('ca'));
    return 0;
  }
  const started = await client.post<CaStatus>(['ca', 'rotate'], {});
  if (flags['no-wait']) {
    show(started);
    return 0;
  }
  const to = started.rotation?.to;
  if (!output) write(`rotation to root ${to} started\n`);
  let phase = started.rotation?.phase;
  if (!output) write(`phase ${phase}\n`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await client.get<CaStatus>('ca');
    const rot = s.rotation;
    if (!rot || rot.to !== to)
      throw new TrellisError(
        'TRL_UNEXPECTED_RESPONSE',
        `the control plane no longer reports the rotation to ${to} (was it restarted from another state directory?)`,
      );
    if (rot.phase !== phase) {
      phase = rot.phase;
      if (!output) write(`phase ${phase}\n`);
    }
    if (phase === 'complete') {
      show(s);
      return 0;
    }
    if (Date.now() > deadline) {
      show(s);
      throw new TrellisError(
        'TRL_UNAVAILABLE',
        `the rotation is still in phase ${phase} after ${timeoutMs / 1000}s; it goes on: the proxies above hold it back (trellis ca status)`,
      );
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
