// Istio's authorization task on Bookinfo, through the gateway, driven like a user with `trellis up`
// and `trellis apply`: allow-nothing, then the viewer policies one by one; the page shows exactly
// which parts are denied at each step. Then a DENY on a path at the ingress gateway.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DETAILS_UNAVAILABLE, REVIEWS_UNAVAILABLE } from '../samples/bookinfo/productpage/page.ts';
import { Mesh, page, ROOT } from './support/mesh.ts';

const SECURITY = path.join(ROOT, 'samples/bookinfo/security');
const NET = path.join(ROOT, 'samples/bookinfo/networking');
const RATINGS_DOWN = 'Ratings service is currently unavailable';
let mesh: Mesh;

async function apply(file: string): Promise<void> {
  const r = mesh.cli(['apply', '-f', file]);
  assert.equal(r.code, 0, `apply ${file}: ${r.stderr}${r.stdout}`);
  assert.doesNotMatch(
    r.stdout + r.stderr,
    /not yet enforced/,
    'the policies are enforced, not merely accepted',
  );
  const rev = /revision (\d+)/.exec(r.stdout);
  assert.ok(rev, `apply prints the revision: ${r.stdout}`);
  await mesh.converged(mesh.info.instances.length, Number(rev[1]));
}

/** What the product page shows: which parts made it and which were denied. */
async function productPage(): Promise<{
  status: number;
  details: boolean;
  reviews: boolean;
  ratings: boolean;
}> {
  const p = await page(`${mesh.gateway}/productpage`);
  if (p.status !== 200) {
    assert.equal(p.text, 'RBAC: access denied');
    return { status: p.status, details: false, reviews: false, ratings: false };
  }
  const details = !p.text.includes(DETAILS_UNAVAILABLE);
  const reviews = !p.text.includes(REVIEWS_UNAVAILABLE);
  return { status: 200, details, reviews, ratings: reviews && !p.text.includes(RATINGS_DOWN) };
}

describe('Bookinfo authorization walkthrough', { timeout: 300_000 }, () => {
  before(async () => {
    mesh = await Mesh.up('samples/bookinfo');
    // Every review from v3, which shows ratings: the page then tells whether ratings was reachable.
    await apply(path.join(NET, 'destination-rule-all.yaml'));
    await apply(path.join(NET, 'virtual-service-reviews-v3.yaml'));
  });
  after(async () => {
    await mesh?.down();
  });

  test('allow-nothing, then productpage, details, reviews and ratings viewers: the page comes back piece by piece', async () => {
    assert.deepEqual(await productPage(), { status: 200, details: true, reviews: true, ratings: true });
    const steps: [string, Awaited<ReturnType<typeof productPage>>][] = [
      ['allow-nothing.yaml', { status: 403, details: false, reviews: false, ratings: false }],
      ['productpage-viewer.yaml', { status: 200, details: false, reviews: false, ratings: false }],
      ['details-viewer.yaml', { status: 200, details: true, reviews: false, ratings: false }],
      ['reviews-viewer.yaml', { status: 200, details: true, reviews: true, ratings: false }],
      ['ratings-viewer.yaml', { status: 200, details: true, reviews: true, ratings: true }],
    ];
    for (const [file, want] of steps) {
      await apply(path.join(SECURITY, file));
      assert.deepEqual(await productPage(), want, `after ${file}`);
    }
  });

  test('a DENY on a path at the ingress gateway: 403 for outside clients, no rule name shown', async () => {
    const api = `${mesh.gateway}/api/v1/products/0/reviews`;
    assert.equal((await page(api)).status, 200);
    await apply(path.join(SECURITY, 'deny-api-reviews.yaml'));
    const denied = await page(api);
    assert.equal(denied.status, 403);
    assert.equal(denied.text, 'RBAC: access denied');
    assert.equal(denied.headers.get('x-trellis-response-flags'), 'RBAC');
    assert.equal(denied.headers.get('x-trellis-rule'), null);
    assert.equal((await page(`${mesh.gateway}/api/v1/products/0`)).status, 200);
    assert.equal(
      (await productPage()).reviews,
      true,
      'the page still shows reviews: that call is inside the mesh',
    );
  });

  test("the legacy roles (Istio 1.0's rbac.istio.io), enforced as the policies they convert to: the same page, piece by piece", async () => {
    const del = mesh.cli(['delete', '-f', SECURITY]);
    assert.equal(del.code, 0, del.stderr + del.stdout);
    await mesh.converged(mesh.info.instances.length, Number(/revision (\d+)/.exec(del.stdout)![1]));
    assert.deepEqual(await productPage(), { status: 200, details: true, reviews: true, ratings: true });
    const steps: [string, Awaited<ReturnType<typeof productPage>>][] = [
      ['rbac-config-on.yaml', { status: 403, details: false, reviews: false, ratings: false }],
      ['productpage-viewer.yaml', { status: 200, details: false, reviews: false, ratings: false }],
      ['details-reviews-viewer.yaml', { status: 200, details: true, reviews: true, ratings: false }],
      ['ratings-viewer.yaml', { status: 200, details: true, reviews: true, ratings: true }],
    ];
    for (const [file, want] of steps) {
      const r = mesh.cli(['apply', '-f', path.join(SECURITY, 'legacy-rbac', file)]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout + r.stderr, /is deprecated \(removed in Istio 1\.6\)/);
      await mesh.converged(mesh.info.instances.length, Number(/revision (\d+)/.exec(r.stdout)![1]));
      assert.deepEqual(await productPage(), want, `after ${file}`);
    }
    const get = mesh.cli(['get', 'authorizationpolicies']);
    assert.equal(get.code, 0, get.stderr);
    assert.match(
      get.stdout,
      /legacy-rbac-details +ALLOW +1 +converted: ClusterRbacConfig default, ServiceRole default\/details-reviews-viewer, ServiceRoleBinding default\/bind-details-reviews/,
    );
  });
});
