// Istio's Bookinfo fault-injection and request-timeouts tasks, with Istio's files unchanged, on
// `trellis up`: what the page shows and how long it takes, as istio.io describes it.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Mesh, page, ROOT } from './support/mesh.ts';

const NET = path.join(ROOT, 'samples/bookinfo/networking');
const REVIEWS_UNAVAILABLE = 'Sorry, product reviews are currently unavailable for this book.';
const RATINGS_UNAVAILABLE = 'Ratings service is currently unavailable';
let mesh: Mesh;
let jason: string;

function apply(...files: string[]): number {
  let revision = 0;
  for (const file of files) {
    const r = mesh.cli(['apply', '-f', path.join(NET, file)]);
    assert.equal(r.code, 0, `apply ${file}: ${r.stderr}${r.stdout}`);
    assert.doesNotMatch(r.stderr, /not yet enforced/, `every field of ${file} is enforced`);
    revision = Number(/revision (\d+)/.exec(r.stdout)?.[1]);
  }
  return revision;
}

async function converged(revision: number): Promise<void> {
  await mesh.converged(mesh.info.instances.length, revision);
}

/** The product page as a user sees it, and how long it took. */
async function load(cookie?: string): Promise<{ text: string; ms: number }> {
  const start = performance.now();
  const p = await page(`${mesh.gateway}/productpage`, cookie ? { headers: { cookie } } : undefined);
  assert.equal(p.status, 200);
  return { text: p.text, ms: performance.now() - start };
}

describe("Istio's Bookinfo fault-injection and request-timeouts tasks", { timeout: 240_000 }, () => {
  before(async () => {
    mesh = await Mesh.up('samples/bookinfo');
    const login = await fetch(`${mesh.gateway}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=jason&passwd=jason',
      redirect: 'manual',
    });
    assert.equal(login.status, 302);
    jason = login.headers.get('set-cookie')!.split(';')[0];
    await converged(
      apply(
        'destination-rule-all.yaml',
        'virtual-service-all-v1.yaml',
        'virtual-service-reviews-test-v2.yaml',
      ),
    );
  });
  after(async () => {
    await mesh?.down();
  });

  test('delay: jason waits about 6 s and sees the reviews error; others are not delayed', async () => {
    await converged(apply('virtual-service-ratings-test-delay.yaml'));
    const slow = await load(jason);
    // productpage gives reviews 3 s and one retry: the 7 s delay on ratings outlasts both.
    assert.ok(slow.ms > 5800 && slow.ms < 7500, `the page took ${Math.round(slow.ms)} ms`);
    assert.ok(slow.text.includes(REVIEWS_UNAVAILABLE), 'the page shows the reviews error');
    const other = await load();
    assert.ok(other.ms < 2000, `anyone else gets the page at once (${Math.round(other.ms)} ms)`);
    assert.ok(!other.text.includes(REVIEWS_UNAVAILABLE));
  });

  test('abort: jason sees "Ratings service is currently unavailable", at once', async () => {
    await converged(apply('virtual-service-ratings-test-abort.yaml'));
    const p = await load(jason);
    assert.ok(p.ms < 2000, `no delay (${Math.round(p.ms)} ms)`);
    assert.ok(p.text.includes(RATINGS_UNAVAILABLE), 'reviews shows the ratings error');
    assert.ok(!(await load()).text.includes(RATINGS_UNAVAILABLE), 'only jason is aborted');
  });

  test('fault-injection-details-v1: every call to details gets 555, the page says so', async () => {
    await converged(apply('fault-injection-details-v1.yaml'));
    const p = await load();
    assert.ok(p.text.includes('Sorry, product details are currently unavailable for this book.'));
    await converged(apply('destination-rule-all.yaml', 'virtual-service-all-v1.yaml'));
  });

  test('request timeouts: 2 s on ratings shows stars late; a 0.5 s reviews timeout gives up after about 1 s', async () => {
    await converged(apply('request-timeouts/reviews-v2.yaml', 'request-timeouts/ratings-delay-2s.yaml'));
    const late = await load();
    assert.ok(late.ms > 1900 && late.ms < 3500, `stars after the 2 s delay (${Math.round(late.ms)} ms)`);
    assert.match(late.text, /glyphicon-star/, 'v2 shows its stars');

    await converged(apply('request-timeouts/reviews-timeout-0.5s.yaml'));
    const cut = await load();
    // Two tries from productpage, each cut at 0.5 s by its sidecar.
    assert.ok(cut.ms > 900 && cut.ms < 2000, `the page took ${Math.round(cut.ms)} ms`);
    assert.ok(cut.text.includes(REVIEWS_UNAVAILABLE));
  });
});
