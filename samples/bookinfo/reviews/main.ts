// reviews: what readers wrote about the book (GET /reviews/<id>). v2/v3 add star ratings fetched
// from the ratings service; v1 has none.
import { hostname } from 'node:os';
import { parseId, sendJson, serve } from '../lib/http.ts';
import { forwardHeaders, getJson, peerUrl } from '../lib/upstream.ts';
import { reviewsConfig } from './config.ts';

const config = reviewsConfig(process.env, hostname());
const ratingsBase = peerUrl('ratings');

const REVIEWS = [
  {
    reviewer: 'Reviewer1',
    text: 'Twins, mistaken identities and a beating or two in every act: a quick, very funny evening.',
  },
  {
    reviewer: 'Reviewer2',
    text: 'Great fun to watch, though it has less to say than the later comedies.',
  },
];

type Rating = { stars: number; color: string } | { error: string };

const UNAVAILABLE: Rating = { error: 'Ratings service is currently unavailable' };

/** Stars per reviewer from ratings, or undefined when ratings could not be had. */
async function fetchRatings(id: number, headers: Record<string, string>) {
  try {
    const reply = await getJson(`${ratingsBase}/ratings/${id}`, headers, config.ratingsTimeoutMs);
    if (reply.status !== 200) {
      process.stderr.write(`reviews: ratings answered ${reply.status}\n`);
      return undefined;
    }
    const ratings = (reply.body as { ratings?: unknown } | undefined)?.ratings;
    return ratings !== null && typeof ratings === 'object' ? (ratings as Record<string, unknown>) : {};
  } catch (err) {
    process.stderr.write(`reviews: ratings unreachable: ${(err as Error).message}\n`);
    return undefined;
  }
}

serve({
  name: 'reviews',
  health: { status: 'Reviews is healthy' },
  async handler(req, res, url) {
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'reviews' || parts.length > 2) return sendJson(res, 404, { error: 'not found' });
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return sendJson(res, 405, { error: 'method not allowed' });
    const id = parseId(parts[1]);
    if (id === undefined) return sendJson(res, 400, { error: 'please provide numeric product id' });

    const ratings = config.ratingsEnabled ? await fetchRatings(id, forwardHeaders(req)) : undefined;
    const reviews = REVIEWS.map((review) => {
      if (!config.ratingsEnabled) return { ...review };
      const stars = ratings?.[review.reviewer];
      const rating: Rating =
        typeof stars === 'number' && Number.isFinite(stars)
          ? { stars, color: config.starColor }
          : UNAVAILABLE;
      return { ...review, rating };
    });
    sendJson(res, 200, {
      id: String(id),
      podname: config.podName,
      clustername: config.clusterName,
      reviews,
    });
  },
});
