import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { AppHealth } from './app-health.ts';

function app(status: () => number): Promise<http.Server> {
  const s = http.createServer((_req, res) => {
    res.writeHead(status());
    res.end();
  });
  return new Promise((r) => s.listen(0, '127.0.0.1', () => r(s)));
}

test('an app that dies leaves at once, not at the next probe', async () => {
  const s = await app(() => 200);
  const port = (s.address() as AddressInfo).port;
  const reports: [boolean, number][] = [];
  const h = new AppHealth(
    { port, path: '/ready', periodMs: 60_000, timeoutMs: 1000, initialDelayMs: 0, failureThreshold: 3 },
    (ok) => reports.push([ok, Date.now()]),
  );
  assert.equal(await h.start(), true);
  await new Promise((r) => setTimeout(r, 50));
  const died = Date.now();
  s.close();
  s.closeAllConnections();
  for (let i = 0; i < 50 && reports.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  h.stop();
  assert.equal(reports[0]?.[0], false);
  assert.ok(
    reports[0][1] - died < 500,
    `reported ${reports[0][1] - died} ms after the app died (period is 60 s)`,
  );
});

test('a failing probe counts up to the failure threshold before the endpoint leaves', async () => {
  let code = 200;
  const s = await app(() => code);
  const port = (s.address() as AddressInfo).port;
  const reports: [boolean, number][] = [];
  const period = 50;
  const h = new AppHealth(
    { port, path: '/ready', periodMs: period, timeoutMs: 1000, initialDelayMs: 0, failureThreshold: 3 },
    (ok) => reports.push([ok, Date.now()]),
  );
  assert.equal(await h.start(), true);
  await new Promise((r) => setTimeout(r, 120));
  code = 503;
  const failing = Date.now();
  await new Promise((r) => setTimeout(r, 8 * period));
  h.stop();
  s.close();
  s.closeAllConnections();
  const down = reports.find(([ok, at]) => !ok && at >= failing);
  assert.ok(down, 'went unhealthy');
  // Three failed probes, one period apart: never before the second period has passed.
  assert.ok(
    down[1] - failing >= 2 * period,
    `unhealthy ${down[1] - failing} ms after the app started failing`,
  );
});

test('during the initial delay the app is not ready', async () => {
  const s = await app(() => 200);
  const port = (s.address() as AddressInfo).port;
  const reports: boolean[] = [];
  const h = new AppHealth(
    { port, periodMs: 1000, timeoutMs: 1000, initialDelayMs: 100, failureThreshold: 1 },
    (ok) => reports.push(ok),
  );
  assert.equal(await h.start(), false);
  await new Promise((r) => setTimeout(r, 250));
  h.stop();
  s.close();
  s.closeAllConnections();
  assert.deepEqual(reports, [true]);
});

test('without a path an app is ready once it accepts a connection (a TCP app is not HTTP)', async () => {
  const s = net.createServer((c) => {
    c.on('error', () => {});
    c.end('not http\n');
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  const readiness = { port, periodMs: 60_000, timeoutMs: 1000, initialDelayMs: 0, failureThreshold: 1 };
  const h = new AppHealth(readiness, () => {});
  assert.equal(await h.start(), true);
  h.stop();
  await new Promise((r) => s.close(r));
  const gone = new AppHealth(readiness, () => {});
  assert.equal(await gone.start(), false, 'nothing listening: not ready');
  gone.stop();
});
