// End-to-end tests of the Bookinfo services: each runs as a real child process on a free port,
// wired to its peers with the *_HOSTNAME / *_SERVICE_PORT variables (no mesh, no proxy).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type RequestListener } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { reviewsConfig } from './reviews/config.ts';

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
type Json = any;

const here = dirname(fileURLToPath(import.meta.url));
const START_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------------------
// Harness

async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The test's environment minus anything that would change how a service behaves or connects. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  const drop =
    /^(https?_proxy|no_proxy|all_proxy|node_use_env_proxy|node_test_context|hostname|cluster_name|enable_ratings|star_color|services_domain|port|bind_address|.*_hostname|.*_service_port|.*_timeout_ms)$/i;
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !drop.test(k)) env[k] = v;
  }
  return env;
}

interface Service {
  name: string;
  port: number;
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
  /** SIGTERM, then wait (bounded) for the exit code. */
  stop(): Promise<number | null>;
}

const running: Service[] = [];

async function start(service: string, env: Record<string, string> = {}): Promise<Service> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(here, service, 'main.ts')], {
    cwd: here,
    env: { ...baseEnv(), ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const svc: Service = {
    name: service,
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    exited,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
  running.push(svc);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${service} did not start within ${START_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, START_TIMEOUT_MS);
    const onData = (d: string) => {
      stdout += d;
      if (stdout.includes(`${service} listening on ${port}`)) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${service} exited with ${code} before listening; stderr: ${stderr}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onExit);
      child.stdout!.resume();
    };
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
  return svc;
}

/** Env pointing a service at `peer` listening on `port` of 127.0.0.1. */
function peer(name: 'details' | 'reviews' | 'ratings', port: number): Record<string, string> {
  const prefix = name.toUpperCase();
  return { [`${prefix}_HOSTNAME`]: '127.0.0.1', [`${prefix}_SERVICE_PORT`]: String(port) };
}

interface Recorded {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

interface Fake {
  port: number;
  requests: Recorded[];
  close(): Promise<void>;
}

const fakes: Fake[] = [];

/** An in-process HTTP server that records every request before `handler` answers it. */
async function fake(handler: RequestListener): Promise<Fake> {
  const requests: Recorded[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const f: Fake = {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  fakes.push(f);
  return f;
}

function json(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const FAKE_REVIEWS = {
  id: '0',
  podname: 'fake-reviews',
  clustername: 'null',
  reviews: [{ reviewer: 'Tester', text: 'Recorded by the fake.' }],
};

async function get(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), ...init });
}

async function getJson(url: string, init: RequestInit = {}): Promise<{ status: number; body: Json }> {
  const res = await get(url, init);
  return { status: res.status, body: await res.json() };
}

async function getText(url: string, init: RequestInit = {}): Promise<{ status: number; body: string }> {
  const res = await get(url, init);
  return { status: res.status, body: await res.text() };
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

/** The `<font color="...">` star blocks of a page: [color, full stars] for each. */
function starBlocks(html: string): [string, number][] {
  const out: [string, number][] = [];
  for (const m of html.matchAll(/<font color="([^"]*)">(.*?)<\/font>/gs)) {
    out.push([m[1], count(m[2], 'glyphicon-star"')]);
  }
  return out;
}

after(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await Promise.all(fakes.map((f) => f.close()));
});

// ---------------------------------------------------------------------------------------------

describe('bookinfo services', () => {
  let details: Service;
  let ratings: Service;
  let reviewsV1: Service;
  let reviewsV2: Service;
  let reviewsV3: Service;
  let productpage: Service;

  before(async () => {
    [details, ratings] = await Promise.all([start('details'), start('ratings')]);
    [reviewsV1, reviewsV2, reviewsV3] = await Promise.all([
      start('reviews', { HOSTNAME: 'reviews-v1-5f7c9', ...peer('ratings', ratings.port) }),
      start('reviews', {
        HOSTNAME: 'reviews-v2-84d1a',
        ENABLE_RATINGS: 'true',
        STAR_COLOR: 'black',
        CLUSTER_NAME: 'east',
        ...peer('ratings', ratings.port),
      }),
      start('reviews', {
        HOSTNAME: 'reviews-v3-0b2e6',
        ENABLE_RATINGS: 'true',
        STAR_COLOR: 'red',
        ...peer('ratings', ratings.port),
      }),
    ]);
    productpage = await start('productpage', {
      ...peer('details', details.port),
      ...peer('reviews', reviewsV2.port),
      ...peer('ratings', ratings.port),
    });
  });

  it('answers GET /health on every service', async () => {
    for (const svc of [details, ratings, reviewsV1, reviewsV2, reviewsV3, productpage]) {
      const res = await get(`${svc.url}/health`);
      assert.equal(res.status, 200, svc.name);
      await res.arrayBuffer();
    }
  });

  it('details returns the book as JSON and refuses a non-numeric id', async () => {
    const ok = await getJson(`${details.url}/details/0`);
    assert.equal(ok.status, 200);
    assert.deepEqual(Object.keys(ok.body).sort(), [
      'ISBN-10',
      'ISBN-13',
      'author',
      'id',
      'language',
      'pages',
      'publisher',
      'type',
      'year',
    ]);
    assert.equal(ok.body.id, 0);
    assert.equal(ok.body.author, 'William Shakespeare');
    assert.equal(typeof ok.body.pages, 'number');
    assert.equal((await getJson(`${details.url}/details/3`)).body.id, 3);

    const bad = await getJson(`${details.url}/details/abc`);
    assert.equal(bad.status, 400);
    assert.equal(typeof bad.body.error, 'string');
    assert.equal((await get(`${details.url}/elsewhere`)).status, 404);
  });

  it('ratings returns the default ratings, refuses a bad id and keeps posted ratings', async () => {
    assert.deepEqual((await getJson(`${ratings.url}/ratings/0`)).body, {
      id: 0,
      ratings: { Reviewer1: 5, Reviewer2: 4 },
    });
    const bad = await getJson(`${ratings.url}/ratings/zero`);
    assert.equal(bad.status, 400);
    assert.equal(typeof bad.body.error, 'string');

    const posted = await getJson(`${ratings.url}/ratings/7`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ Reviewer1: 1, Reviewer2: 2 }),
    });
    assert.equal(posted.status, 200);
    assert.deepEqual(posted.body, { id: 7, ratings: { Reviewer1: 1, Reviewer2: 2 } });
    assert.deepEqual((await getJson(`${ratings.url}/ratings/7`)).body, posted.body);
    // Other products keep their defaults.
    assert.deepEqual((await getJson(`${ratings.url}/ratings/0`)).body.ratings, {
      Reviewer1: 5,
      Reviewer2: 4,
    });

    const invalid = await getJson(`${ratings.url}/ratings/7`, { method: 'POST', body: '{not json' });
    assert.equal(invalid.status, 400);
    assert.equal(typeof invalid.body.error, 'string');
  });

  it('reviews v1 has no ratings', async () => {
    const { status, body } = await getJson(`${reviewsV1.url}/reviews/0`);
    assert.equal(status, 200);
    assert.equal(body.id, '0');
    assert.equal(body.podname, 'reviews-v1-5f7c9');
    assert.equal(body.clustername, 'null');
    assert.equal(body.reviews.length, 2);
    for (const review of body.reviews) {
      assert.equal(typeof review.reviewer, 'string');
      assert.equal(typeof review.text, 'string');
      assert.equal('rating' in review, false);
    }
  });

  it('reviews v2 rates in black and v3 in red, from the ratings service', async () => {
    const v2 = await getJson(`${reviewsV2.url}/reviews/0`);
    assert.equal(v2.body.podname, 'reviews-v2-84d1a');
    assert.equal(v2.body.clustername, 'east');
    assert.deepEqual(
      v2.body.reviews.map((r: Json) => r.rating),
      [
        { stars: 5, color: 'black' },
        { stars: 4, color: 'black' },
      ],
    );
    const v3 = await getJson(`${reviewsV3.url}/reviews/0`);
    assert.equal(v3.body.podname, 'reviews-v3-0b2e6');
    assert.deepEqual(
      v3.body.reviews.map((r: Json) => r.rating),
      [
        { stars: 5, color: 'red' },
        { stars: 4, color: 'red' },
      ],
    );
    // Posted ratings flow through: product 7 was rated 1 and 2 above.
    const rated = await getJson(`${reviewsV3.url}/reviews/7`);
    assert.deepEqual(
      rated.body.reviews.map((r: Json) => r.rating.stars),
      [1, 2],
    );
    assert.equal((await getJson(`${reviewsV2.url}/reviews/x`)).status, 400);
  });

  it('productpage renders details, reviews, the serving pod and black stars', async () => {
    const { status, body } = await getText(`${productpage.url}/productpage`);
    assert.equal(status, 200);
    assert.match(body, /The Comedy of Errors/);
    assert.match(body, /William Shakespeare/);
    assert.match(body, /ISBN-10/);
    assert.match(body, /Reviewer1/);
    assert.match(body, /Reviews served by: reviews-v2-84d1a on cluster east/);
    assert.deepEqual(starBlocks(body), [
      ['black', 5],
      ['black', 4],
    ]);
    assert.doesNotMatch(body, /currently unavailable/);
    assert.match(body, /name="username"/); // signed out: the sign-in form is shown
  });

  it('productpage serves the index, the JSON API, and 404 for static assets', async () => {
    const index = await getText(`${productpage.url}/`);
    assert.equal(index.status, 200);
    assert.match(index.body, /href="\/productpage"/);

    const products = await getJson(`${productpage.url}/api/v1/products`);
    assert.equal(products.status, 200);
    assert.equal(products.body.length, 1);
    assert.equal(products.body[0].id, 0);
    assert.equal(products.body[0].title, 'The Comedy of Errors');
    assert.equal(typeof products.body[0].descriptionHtml, 'string');

    const product = await getJson(`${productpage.url}/api/v1/products/0`);
    assert.equal(product.status, 200);
    assert.equal(product.body.author, 'William Shakespeare');

    const reviews = await getJson(`${productpage.url}/api/v1/products/0/reviews`);
    assert.equal(reviews.status, 200);
    assert.equal(reviews.body.podname, 'reviews-v2-84d1a');

    const rating = await getJson(`${productpage.url}/api/v1/products/0/ratings`);
    assert.deepEqual(rating.body, { id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 } });

    const badId = await getJson(`${productpage.url}/api/v1/products/abc`);
    assert.equal(badId.status, 400);
    assert.match(badId.body.error, /product details are currently unavailable/);

    assert.equal((await get(`${productpage.url}/static/bootstrap.css`)).status, 404);
  });

  it('exits 0 on SIGTERM', async () => {
    const svc = await start('details');
    const code = await svc.stop();
    assert.equal(code, 0);
    assert.equal(svc.child.signalCode, null);
  });
});

describe('header forwarding and sign-in', () => {
  let reviews: Fake;
  let details: Fake;
  let productpage: Service;
  const trace = {
    'x-request-id': 'req-2f1e',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    tracestate: 'vendor=value',
    'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
    'x-b3-spanid': 'e457b5a2e4d86bd1',
    'x-b3-sampled': '1',
    b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1',
    sw8: '1-abc-def',
    'user-agent': 'bookinfo-test/1.0',
  };

  before(async () => {
    reviews = await fake((_req, res) => json(res, 200, FAKE_REVIEWS));
    details = await fake((_req, res) => json(res, 200, { id: 0, author: 'Someone', pages: 1 }));
    productpage = await start('productpage', {
      ...peer('details', details.port),
      ...peer('reviews', reviews.port),
    });
  });

  it('forwards trace headers to details and reviews, and no end-user when signed out', async () => {
    const page = await getText(`${productpage.url}/productpage`, {
      headers: { ...trace, 'x-unrelated': 'nope' },
    });
    assert.match(page.body, /Reviews served by: fake-reviews/);
    for (const seen of [reviews.requests.at(-1)!, details.requests.at(-1)!]) {
      for (const [name, value] of Object.entries(trace)) assert.equal(seen.headers[name], value, name);
      assert.equal(seen.headers['x-unrelated'], undefined);
      assert.equal(seen.headers['end-user'], undefined);
    }
    assert.equal(reviews.requests.at(-1)!.path, '/reviews/0');
    assert.equal(details.requests.at(-1)!.path, '/details/0');
  });

  it('signs in with a session cookie, sends end-user to reviews, and signs out', async () => {
    const login = await get(`${productpage.url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=jason&passwd=secret',
    });
    assert.equal(login.status, 302);
    assert.equal(login.headers.get('location'), '/productpage');
    const setCookie = login.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /^session=[^;]+;/);
    assert.match(setCookie, /HttpOnly/i);
    const cookie = setCookie.split(';')[0];
    assert.doesNotMatch(cookie, /jason/); // opaque: the user is kept server-side

    const page = await getText(`${productpage.url}/productpage`, {
      headers: { cookie, 'x-request-id': 'req-signed-in' },
    });
    assert.match(page.body, /jason/);
    assert.match(page.body, /href="\/logout"/);
    const seen = reviews.requests.at(-1)!;
    assert.equal(seen.headers['end-user'], 'jason');
    assert.equal(seen.headers['x-request-id'], 'req-signed-in');

    // The session's user wins over an end-user header sent by the client...
    await getText(`${productpage.url}/productpage`, { headers: { cookie, 'end-user': 'visitor' } });
    assert.equal(reviews.requests.at(-1)!.headers['end-user'], 'jason');
    // ...and without a session a client's end-user header is dropped: nobody can claim jason's routing.
    // A forged cookie is nobody.
    await getText(`${productpage.url}/productpage`, {
      headers: { cookie: 'session=forged', 'end-user': 'jason' },
    });
    assert.equal(reviews.requests.at(-1)!.headers['end-user'], undefined);
    await getText(`${productpage.url}/productpage`, { headers: { cookie: 'session=forged' } });
    assert.equal(reviews.requests.at(-1)!.headers['end-user'], undefined);

    const logout = await get(`${productpage.url}/logout`, { headers: { cookie } });
    assert.equal(logout.status, 302);
    assert.equal(logout.headers.get('location'), '/productpage');
    assert.match(logout.headers.get('set-cookie') ?? '', /^session=;.*Max-Age=0/i);

    const after = await getText(`${productpage.url}/productpage`, { headers: { cookie } });
    assert.equal(reviews.requests.at(-1)!.headers['end-user'], undefined);
    assert.match(after.body, /name="username"/);
  });

  it('reviews forwards the headers it received to ratings', async () => {
    const ratings = await fake((_req, res) =>
      json(res, 200, { id: 0, ratings: { Reviewer1: 3, Reviewer2: 2 } }),
    );
    const reviewsV2 = await start('reviews', {
      ENABLE_RATINGS: 'true',
      STAR_COLOR: 'black',
      ...peer('ratings', ratings.port),
    });
    const { body } = await getJson(`${reviewsV2.url}/reviews/0`, {
      headers: { ...trace, 'end-user': 'jason' },
    });
    assert.deepEqual(
      body.reviews.map((r: Json) => r.rating),
      [
        { stars: 3, color: 'black' },
        { stars: 2, color: 'black' },
      ],
    );
    const seen = ratings.requests.at(-1)!;
    assert.equal(seen.path, '/ratings/0');
    for (const [name, value] of Object.entries(trace)) assert.equal(seen.headers[name], value, name);
    assert.equal(seen.headers['end-user'], 'jason');
  });
});

describe('failures', () => {
  it('reviews v2/v3 report ratings unavailable once ratings is killed, and the page says so', async () => {
    const ratings = await start('ratings');
    const [v2, v3] = await Promise.all([
      start('reviews', { ENABLE_RATINGS: 'true', STAR_COLOR: 'black', ...peer('ratings', ratings.port) }),
      start('reviews', {
        HOSTNAME: 'reviews-v3-kill',
        ENABLE_RATINGS: 'true',
        STAR_COLOR: 'red',
        ...peer('ratings', ratings.port),
      }),
    ]);
    const details = await start('details');
    const productpage = await start('productpage', {
      ...peer('details', details.port),
      ...peer('reviews', v3.port),
    });
    const before = await getText(`${productpage.url}/productpage`);
    assert.deepEqual(starBlocks(before.body), [
      ['red', 5],
      ['red', 4],
    ]);

    assert.equal(await ratings.stop(), 0);

    for (const svc of [v2, v3]) {
      const { status, body } = await getJson(`${svc.url}/reviews/0`);
      assert.equal(status, 200);
      for (const review of body.reviews) {
        assert.deepEqual(review.rating, { error: 'Ratings service is currently unavailable' });
      }
    }
    const page = await getText(`${productpage.url}/productpage`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Ratings service is currently unavailable/);
    assert.match(page.body, /Reviews served by: reviews-v3-kill/);
    assert.deepEqual(starBlocks(page.body), []);
  });

  it('reviews gives up on a ratings call that hangs past its timeout', async () => {
    const hanging = await fake(() => {
      /* never answers */
    });
    const v3 = await start('reviews', {
      ENABLE_RATINGS: 'true',
      STAR_COLOR: 'red',
      RATINGS_TIMEOUT_MS: '300',
      ...peer('ratings', hanging.port),
    });
    const t0 = Date.now();
    const { body } = await getJson(`${v3.url}/reviews/0`);
    assert.ok(Date.now() - t0 < 5000);
    assert.equal(hanging.requests.length, 1);
    assert.deepEqual(body.reviews[0].rating, { error: 'Ratings service is currently unavailable' });
  });

  it('derives the ratings timeout from the star colour', () => {
    assert.equal(reviewsConfig({ STAR_COLOR: 'black' }, 'h').ratingsTimeoutMs, 10_000);
    assert.equal(reviewsConfig({ STAR_COLOR: 'red' }, 'h').ratingsTimeoutMs, 2_500);
    assert.equal(reviewsConfig({}, 'h').ratingsTimeoutMs, 10_000);
    assert.equal(reviewsConfig({ STAR_COLOR: 'red', RATINGS_TIMEOUT_MS: '700' }, 'h').ratingsTimeoutMs, 700);
    const v1 = reviewsConfig({}, 'box');
    assert.equal(v1.ratingsEnabled, false);
    assert.equal(v1.podName, 'box');
    assert.equal(v1.clusterName, 'null');
  });

  it('productpage says reviews are unavailable when reviews is down, and details when details is', async () => {
    const details = await start('details');
    const reviewsDown = await freePort();
    const detailsDown = await freePort();
    const noReviews = await start('productpage', {
      ...peer('details', details.port),
      ...peer('reviews', reviewsDown),
    });
    const page = await getText(`${noReviews.url}/productpage`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Sorry, product reviews are currently unavailable for this book\./);
    assert.match(page.body, /William Shakespeare/);
    assert.doesNotMatch(page.body, /Reviews served by:/);
    const api = await getJson(`${noReviews.url}/api/v1/products/0/reviews`);
    assert.equal(api.status, 500);
    assert.equal(api.body.error, 'Sorry, product reviews are currently unavailable for this book.');

    const reviews = await fake((_req, res) => json(res, 200, FAKE_REVIEWS));
    const noDetails = await start('productpage', {
      ...peer('details', detailsDown),
      ...peer('reviews', reviews.port),
    });
    const page2 = await getText(`${noDetails.url}/productpage`);
    assert.match(page2.body, /Sorry, product details are currently unavailable for this book\./);
    assert.match(page2.body, /Reviews served by: fake-reviews/);
  });

  it('productpage retries reviews once', async () => {
    let calls = 0;
    const flaky = await fake((_req, res) => {
      calls++;
      if (calls % 2 === 1) json(res, 503, { error: 'try again' });
      else json(res, 200, FAKE_REVIEWS);
    });
    const down = await fake((_req, res) => json(res, 503, { error: 'down' }));
    const details = await fake((_req, res) => json(res, 200, { id: 0 }));
    const pp = await start('productpage', {
      ...peer('details', details.port),
      ...peer('reviews', flaky.port),
    });
    const page = await getText(`${pp.url}/productpage`);
    assert.match(page.body, /Reviews served by: fake-reviews/);
    assert.equal(flaky.requests.length, 2);

    const pp2 = await start('productpage', {
      ...peer('details', details.port),
      ...peer('reviews', down.port),
    });
    const api = await getJson(`${pp2.url}/api/v1/products/0/reviews`);
    assert.equal(api.status, 503);
    assert.equal(down.requests.length, 2);
  });
});
