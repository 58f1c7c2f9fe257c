// productpage: the web front of Bookinfo. Renders the book page from details and reviews, keeps
// signed-in users in a session, and serves the JSON API under /api/v1/products.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLargeError, readBody, sendHtml, sendJson, sendText, serve } from '../lib/http.ts';
import { envMs, forwardHeaders, getJson, peerUrl, type UpstreamReply } from '../lib/upstream.ts';
import {
  DETAILS_UNAVAILABLE,
  PRODUCTS,
  RATINGS_UNAVAILABLE,
  REVIEWS_UNAVAILABLE,
  renderIndex,
  renderProductPage,
} from './page.ts';
import { clearedSessionCookie, Sessions, sessionCookie, validUserName } from './sessions.ts';

const detailsBase = peerUrl('details');
const reviewsBase = peerUrl('reviews');
const ratingsBase = peerUrl('ratings');
const DETAILS_TIMEOUT_MS = envMs(process.env.DETAILS_TIMEOUT_MS, 3000);
const REVIEWS_TIMEOUT_MS = envMs(process.env.REVIEWS_TIMEOUT_MS, 3000);
const RATINGS_TIMEOUT_MS = envMs(process.env.RATINGS_TIMEOUT_MS, 3000);
/** Reviews gets a second try when the first fails, as Istio's productpage does. */
const REVIEWS_ATTEMPTS = 2;

const sessions = new Sessions();

/** Headers for calls made on behalf of `req`: the forwarded set, plus the signed-in user. */
function outboundHeaders(req: IncomingMessage): Record<string, string> {
  const headers = forwardHeaders(req);
  // productpage is the edge: who the end user is comes from its session only, never from a header a
  // client could set to get someone else's routing.
  delete headers['end-user'];
  const user = sessions.userOf(req);
  if (user !== undefined) headers['end-user'] = user;
  return headers;
}

interface Outcome {
  ok: boolean;
  status: number;
  body: unknown;
}

async function call(url: string, headers: Record<string, string>, timeoutMs: number): Promise<Outcome> {
  let reply: UpstreamReply;
  try {
    reply = await getJson(url, headers, timeoutMs);
  } catch (err) {
    process.stderr.write(`productpage: GET ${url} failed: ${(err as Error).message}\n`);
    return { ok: false, status: 500, body: undefined };
  }
  const ok = reply.status === 200 && reply.body !== null && typeof reply.body === 'object';
  return { ok, status: reply.status === 200 && !ok ? 502 : reply.status, body: reply.body };
}

function getDetails(id: string, headers: Record<string, string>): Promise<Outcome> {
  return call(`${detailsBase}/details/${encodeURIComponent(id)}`, headers, DETAILS_TIMEOUT_MS);
}

async function getReviews(id: string, headers: Record<string, string>): Promise<Outcome> {
  let last: Outcome = { ok: false, status: 500, body: undefined };
  for (let attempt = 0; attempt < REVIEWS_ATTEMPTS; attempt++) {
    last = await call(`${reviewsBase}/reviews/${encodeURIComponent(id)}`, headers, REVIEWS_TIMEOUT_MS);
    if (last.ok) break;
  }
  return last;
}

function getRatings(id: string, headers: Record<string, string>): Promise<Outcome> {
  return call(`${ratingsBase}/ratings/${encodeURIComponent(id)}`, headers, RATINGS_TIMEOUT_MS);
}

/** Replies with the peer's JSON on success, else its status (500 when unreachable) and `message`. */
function relay(res: ServerResponse, outcome: Outcome, message: string): void {
  if (outcome.ok) sendJson(res, 200, outcome.body);
  else sendJson(res, outcome.status, { error: message });
}

function redirect(res: ServerResponse, location: string, cookie?: string): void {
  const headers: Record<string, string> = { location, 'content-length': '0' };
  if (cookie) headers['set-cookie'] = cookie;
  res.writeHead(302, headers);
  res.end();
}

async function productPage(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const product = PRODUCTS[0];
  const headers = outboundHeaders(req);
  const [details, reviews] = await Promise.all([
    getDetails(String(product.id), headers),
    getReviews(String(product.id), headers),
  ]);
  const html = renderProductPage({
    product,
    user: sessions.userOf(req),
    details: details.ok ? (details.body as Record<string, unknown>) : undefined,
    reviews: reviews.ok ? (reviews.body as Record<string, unknown>) : undefined,
  });
  sendHtml(res, 200, html);
}

async function login(req: IncomingMessage, res: ServerResponse): Promise<void> {
  let text: string;
  try {
    text = await readBody(req, 8 * 1024);
  } catch (err) {
    if (err instanceof BodyTooLargeError) return sendText(res, 413, 'request body too large\n');
    throw err;
  }
  const form = new URLSearchParams(text);
  const user = validUserName(form.get('username'));
  // Like Istio's sample, any password is accepted: the user name is all routing looks at.
  if (user === undefined) return redirect(res, '/productpage');
  sessions.close(req);
  redirect(res, '/productpage', sessionCookie(sessions.open(user)));
}

function logout(req: IncomingMessage, res: ServerResponse): void {
  sessions.close(req);
  redirect(res, '/productpage', clearedSessionCookie());
}

async function api(req: IncomingMessage, res: ServerResponse, parts: string[]): Promise<void> {
  // parts: ['api', 'v1', 'products', id?, ('reviews' | 'ratings')?]
  if (parts.length === 3) return sendJson(res, 200, PRODUCTS);
  const id = parts[3];
  const headers = outboundHeaders(req);
  if (parts.length === 4) return relay(res, await getDetails(id, headers), DETAILS_UNAVAILABLE);
  if (parts.length === 5 && parts[4] === 'reviews') {
    return relay(res, await getReviews(id, headers), REVIEWS_UNAVAILABLE);
  }
  if (parts.length === 5 && parts[4] === 'ratings') {
    return relay(res, await getRatings(id, headers), RATINGS_UNAVAILABLE);
  }
  sendJson(res, 404, { error: 'not found' });
}

serve({
  name: 'productpage',
  health: 'Product page is healthy',
  async handler(req, res, url) {
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (path === '/login') {
      if (method !== 'POST') return sendText(res, 405, 'method not allowed\n');
      return login(req, res);
    }
    if (method !== 'GET' && method !== 'HEAD') return sendText(res, 405, 'method not allowed\n');
    if (path === '/' || path === '/index.html') return sendHtml(res, 200, renderIndex());
    if (path === '/productpage') return productPage(req, res);
    if (path === '/logout') return logout(req, res);
    const parts = path.split('/').filter(Boolean);
    if (parts[0] === 'api' && parts[1] === 'v1' && parts[2] === 'products' && parts.length <= 5) {
      return api(req, res, parts);
    }
    // No static assets: the page inlines its CSS.
    sendText(res, 404, 'not found\n');
  },
});
