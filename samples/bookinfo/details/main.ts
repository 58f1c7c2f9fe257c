// details: bibliographic facts about the book (GET /details/<id>).
import { parseId, sendJson, serve } from '../lib/http.ts';

function bookDetails(id: number) {
  return {
    id,
    author: 'William Shakespeare',
    year: 1595,
    type: 'paperback',
    pages: 200,
    publisher: 'Bankside Books',
    language: 'English',
    'ISBN-10': '1595000000',
    'ISBN-13': '978-1595000000',
  };
}

serve({
  name: 'details',
  health: { status: 'Details is healthy' },
  handler(req, res, url) {
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'details' || parts.length > 2) return sendJson(res, 404, { error: 'not found' });
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return sendJson(res, 405, { error: 'method not allowed' });
    const id = parseId(parts[1]);
    if (id === undefined) return sendJson(res, 400, { error: 'please provide numeric product id' });
    sendJson(res, 200, bookDetails(id));
  },
});
