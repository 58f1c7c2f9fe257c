// ratings: star ratings per reviewer (GET /ratings/<id>), replaceable in memory (POST /ratings/<id>).
import { BodyTooLargeError, parseId, readBody, sendJson, serve } from '../lib/http.ts';

type Ratings = Record<string, number>;

const DEFAULT_RATINGS: Ratings = { Reviewer1: 5, Reviewer2: 4 };
/** Ratings posted by users, by product id; they replace the defaults for that product. */
const posted = new Map<number, Ratings>();
const MAX_POSTED = 1000;

function ratingsFor(id: number) {
  return { id, ratings: posted.get(id) ?? { ...DEFAULT_RATINGS } };
}

/** A JSON object of reviewer → number; anything else is refused. */
function parseRatings(text: string): Ratings | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const out: Ratings = {};
  for (const [reviewer, stars] of Object.entries(value)) {
    if (typeof stars !== 'number' || !Number.isFinite(stars)) return undefined;
    out[reviewer] = stars;
  }
  return out;
}

serve({
  name: 'ratings',
  health: { status: 'Ratings is healthy' },
  async handler(req, res, url) {
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'ratings' || parts.length > 2) return sendJson(res, 404, { error: 'not found' });
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') {
      return sendJson(res, 405, { error: 'method not allowed' });
    }
    const id = parseId(parts[1]);
    if (id === undefined) return sendJson(res, 400, { error: 'please provide numeric product ID' });
    if (method !== 'POST') return sendJson(res, 200, ratingsFor(id));

    let text: string;
    try {
      text = await readBody(req);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return sendJson(res, 413, { error: err.message });
      throw err;
    }
    const ratings = parseRatings(text);
    if (!ratings) return sendJson(res, 400, { error: 'please provide valid ratings JSON' });
    if (!posted.has(id) && posted.size >= MAX_POSTED) {
      const oldest = posted.keys().next().value;
      if (oldest !== undefined) posted.delete(oldest);
    }
    posted.set(id, ratings);
    sendJson(res, 200, ratingsFor(id));
  },
});
