import assert from 'node:assert/strict';
import net, { type AddressInfo, type Socket } from 'node:net';
import { test } from 'node:test';
import { type PipeResult, pipe } from './pipe.ts';

/** A connected pair of sockets: what is written to `a` arrives at `b`. */
async function pair(): Promise<[Socket, Socket, () => void]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const a = net.connect({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    allowHalfOpen: true,
  });
  return [a, await accepted, () => server.close()];
}

/** client ⇄ [down | pipe | up] ⇄ app */
async function joined(o: { idleTimeoutMs: number; maxDurationMs?: number }) {
  const [client, down, close1] = await pair();
  const [up, app, close2] = await pair();
  const result = new Promise<PipeResult>((resolve) => pipe(down, up, o, resolve));
  const close = () => {
    close1();
    close2();
  };
  return { client, app, result, close };
}

test('bytes both ways with backpressure, a FIN passed on, counts on close', async () => {
  const { client, app, result, close } = await joined({ idleTimeoutMs: 0 });
  // More than the kernel's socket buffers of both pairs can hold (on loopback tcp_rmem grows to
  // 32 MiB, tcp_wmem to 4 MiB): what is left in the client shows the pipe waits for the app.
  const big = Buffer.alloc(128 * 1024 * 1024, 7);
  try {
    // The app reads nothing for a while: the pipe must hold at most a buffer's worth, not all 128 MiB.
    app.pause();
    client.end(big);
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(client.writableLength > 0 || !client.writableFinished, 'the client is held back');
    const chunks: Buffer[] = [];
    app.on('data', (c: Buffer) => chunks.push(c));
    app.resume();
    await new Promise((r) => app.once('end', r));
    assert.equal(Buffer.concat(chunks).length, big.length);
    // Half-closed: the app still answers after the client's FIN.
    const answer = new Promise<string>((r) => client.once('data', (c: Buffer) => r(c.toString())));
    app.end('done');
    assert.equal(await answer, 'done');
    const r = await result;
    assert.deepEqual(
      { received: r.received, sent: r.sent, end: r.end },
      { received: big.length, sent: 4, end: 'closed' },
    );
  } finally {
    // A failed assertion must not leave the sockets holding the test file open.
    client.destroy();
    app.destroy();
    close();
  }
});

test('the idle timeout closes a quiet pair; traffic keeps it open', async () => {
  const { client, app, result, close } = await joined({ idleTimeoutMs: 200 });
  const started = performance.now();
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 100));
    client.write('x');
  }
  app.resume();
  const r = await result;
  assert.equal(r.end, 'idle_timeout');
  assert.ok(performance.now() - started >= 550, 'writes every 100 ms kept it open past 200 ms');
  close();
});

test('maxDuration closes a busy pair', async () => {
  const { client, app, result, close } = await joined({ idleTimeoutMs: 0, maxDurationMs: 150 });
  const timer = setInterval(() => client.write('x'), 20);
  app.resume();
  assert.equal((await result).end, 'max_duration');
  clearInterval(timer);
  close();
});
