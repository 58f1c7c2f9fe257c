import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConntrackTable, capturedDestination } from './capture.ts';

const TABLE = `ipv4     2 tcp      6 431997 ESTABLISHED src=10.213.9.1 dst=10.213.9.2 sport=60726 dport=15006 src=10.213.9.2 dst=10.213.9.1 sport=15006 dport=60726 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=10.213.9.2 dst=10.100.206.127 sport=33342 dport=9080 src=127.0.0.1 dst=10.213.9.2 sport=15001 dport=33342 [ASSURED] mark=0 zone=0 use=2
ipv4     2 tcp      6 431999 ESTABLISHED src=10.213.9.2 dst=192.0.2.9 sport=33343 dport=80 src=127.0.0.1 dst=10.213.9.2 sport=15001 dport=33343 [ASSURED] mark=0 zone=0 use=2
`;

function table(text: string): { t: ConntrackTable; close: () => void } {
  const file = path.join(tmpdir(), `conntrack-${process.pid}`);
  writeFileSync(file, text);
  const fd = openSync(file, 'r');
  return { t: new ConntrackTable(fd), close: () => closeSync(fd) };
}

test('the original destination is the entry whose reply tuple is the accepted socket', () => {
  const { t, close } = table(TABLE);
  assert.deepEqual(t.original('10.213.9.2', 33342, 15001), { host: '10.100.206.127', port: 9080 });
  assert.equal(t.original('10.213.9.2', 40000, 15001), undefined);
  close();
});

test('a VIP becomes its service host; another address stays; an unknown connection has none', () => {
  const { t, close } = table(TABLE);
  const dest = capturedDestination(t, () => ({ '10.100.206.127': 'details.default.svc.cluster.local' }));
  const sock = (remotePort: number) =>
    ({ remoteAddress: '10.213.9.2', remotePort, localPort: 15001 }) as Socket;
  assert.deepEqual(dest(sock(33342)), { host: 'details.default.svc.cluster.local', port: 9080 });
  assert.deepEqual(dest(sock(33343)), { host: '192.0.2.9', port: 80 });
  assert.equal(dest(sock(1)), undefined);
  close();
});

test('a table larger than the first buffer is read whole', () => {
  const filler =
    `ipv4     2 tcp      6 100 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=1 dport=9080 src=127.0.0.1 dst=127.0.0.1 sport=9080 dport=1 [ASSURED] mark=0 zone=0 use=2\n`.repeat(
      3000,
    );
  const { t, close } = table(filler + TABLE);
  assert.deepEqual(t.original('10.213.9.2', 33343, 15001), { host: '192.0.2.9', port: 80 });
  close();
});
