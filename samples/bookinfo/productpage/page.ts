// HTML of the product page and the index page: self-contained, inline CSS, no external assets.

export interface Product {
  id: number;
  title: string;
  /** Trusted HTML written by us, rendered as is. */
  descriptionHtml: string;
}

export const PRODUCTS: Product[] = [
  {
    id: 0,
    title: 'The Comedy of Errors',
    descriptionHtml:
      '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: ' +
      'an early comedy by <b>William Shakespeare</b> and the shortest of his plays. Two pairs of ' +
      'identical twins, separated at birth, land in the same town on the same day, and every ' +
      'mix-up that follows is played for laughs.',
  },
];

export const DETAILS_UNAVAILABLE = 'Sorry, product details are currently unavailable for this book.';
export const REVIEWS_UNAVAILABLE = 'Sorry, product reviews are currently unavailable for this book.';
export const RATINGS_UNAVAILABLE = 'Sorry, product ratings are currently unavailable for this book.';

export function escapeHtml(value: unknown): string {
  return String(value ?? '')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const STYLE = `
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; background: #f5f5f2; }
  header { background: #24292f; color: #fff; padding: 10px 24px; display: flex; align-items: center; justify-content: space-between; flex-wrap: wrap; gap: 8px; }
  header .brand { font-weight: 600; font-size: 18px; color: #fff; text-decoration: none; }
  header form { display: flex; gap: 6px; margin: 0; }
  header input { padding: 4px 8px; border: 1px solid #888; border-radius: 4px; }
  header button { padding: 4px 12px; border: 0; border-radius: 4px; background: #2f81f7; color: #fff; cursor: pointer; }
  header a { color: #9cc3ff; }
  main { max-width: 1000px; margin: 0 auto; padding: 16px 24px 40px; }
  h1 { text-align: center; color: #1f4e8c; margin: 12px 0; }
  h2 { text-align: center; color: #1f4e8c; font-size: 19px; margin: 8px 0 12px; }
  .summary { background: #fff; border-radius: 6px; padding: 12px 16px; }
  .columns { display: flex; gap: 24px; flex-wrap: wrap; margin-top: 16px; }
  .column { flex: 1 1 360px; background: #fff; border-radius: 6px; padding: 12px 16px; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
  dt { font-weight: 600; }
  dd { margin: 0; }
  blockquote { margin: 0 0 14px; padding: 6px 12px; border-left: 4px solid #d0d7de; }
  blockquote p { margin: 0 0 4px; }
  blockquote small { display: block; color: #666; }
  .stars { font-size: 18px; letter-spacing: 2px; }
  .error { color: #a40e26; }
  .served-by { color: #666; font-size: 13px; margin-top: 12px; }
`;

function layout(title: string, header: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<a class="brand" href="/productpage">BookInfo Sample</a>
${header}
</header>
<main>
${body}
</main>
</body>
</html>
`;
}

function userBar(user: string | undefined): string {
  if (user) {
    return `<span class="user">Signed in as <b>${escapeHtml(user)}</b> (<a href="/logout">Sign out</a>)</span>`;
  }
  return `<form method="post" action="/login" name="login_form">
<input type="text" name="username" placeholder="User Name" aria-label="User Name">
<input type="password" name="passwd" placeholder="Password" aria-label="Password">
<button type="submit">Sign in</button>
</form>`;
}

export function renderIndex(): string {
  const body = `<h1>Bookinfo</h1>
<div class="summary">
<p>A small book store made of four services: <b>productpage</b> calls <b>details</b> and
<b>reviews</b>, and <b>reviews</b> (v2 and v3) calls <b>ratings</b>.</p>
<p><a href="/productpage">Open the product page</a></p>
</div>`;
  return layout('Bookinfo', '', body);
}

export interface PageData {
  product: Product;
  user?: string;
  /** Details JSON when the details call succeeded. */
  details?: Record<string, unknown>;
  /** Reviews JSON when the reviews call succeeded. */
  reviews?: { podname?: unknown; clustername?: unknown; reviews?: unknown };
}

const DETAIL_FIELDS: [string, string][] = [
  ['Author', 'author'],
  ['Year', 'year'],
  ['Type', 'type'],
  ['Pages', 'pages'],
  ['Publisher', 'publisher'],
  ['Language', 'language'],
  ['ISBN-10', 'ISBN-10'],
  ['ISBN-13', 'ISBN-13'],
];

function renderDetails(details: Record<string, unknown> | undefined): string {
  if (!details) {
    return `<h2>Error fetching product details!</h2>
<p class="error">${escapeHtml(DETAILS_UNAVAILABLE)}</p>`;
  }
  const rows = DETAIL_FIELDS.filter(([, key]) => details[key] !== undefined)
    .map(([label, key]) => `<dt>${escapeHtml(label)}:</dt><dd>${escapeHtml(details[key])}</dd>`)
    .join('\n');
  return `<h2>Book Details</h2>
<dl>
${rows}
</dl>`;
}

function renderStars(stars: number, color: string): string {
  const full = Math.max(0, Math.min(5, Math.round(stars)));
  const glyphs =
    '<span class="glyphicon glyphicon-star">&#9733;</span>'.repeat(full) +
    '<span class="glyphicon glyphicon-star-empty">&#9734;</span>'.repeat(5 - full);
  return `<font color="${escapeHtml(color)}"><span class="stars">${glyphs}</span></font>`;
}

function renderRating(rating: unknown): string {
  if (rating === null || typeof rating !== 'object') return '';
  const r = rating as { stars?: unknown; color?: unknown; error?: unknown };
  if (typeof r.stars === 'number')
    return renderStars(r.stars, typeof r.color === 'string' ? r.color : 'black');
  if (r.error !== undefined) return `<p class="error"><i>${escapeHtml(r.error)}</i></p>`;
  return '';
}

function renderReviews(reviews: PageData['reviews']): string {
  if (!reviews) {
    return `<h2>Error fetching product reviews!</h2>
<p class="error">${escapeHtml(REVIEWS_UNAVAILABLE)}</p>`;
  }
  const list = Array.isArray(reviews.reviews) ? reviews.reviews : [];
  const quotes = list
    .map((item) => {
      const review = (item ?? {}) as { text?: unknown; reviewer?: unknown; rating?: unknown };
      return `<blockquote>
<p>${escapeHtml(review.text)}</p>
<small>${escapeHtml(review.reviewer)}</small>
${renderRating(review.rating)}
</blockquote>`;
    })
    .join('\n');
  const cluster =
    reviews.clustername !== undefined && reviews.clustername !== null && reviews.clustername !== 'null'
      ? ` on cluster ${escapeHtml(reviews.clustername)}`
      : '';
  return `<h2>Book Reviews</h2>
${quotes}
<p class="served-by">Reviews served by: ${escapeHtml(reviews.podname)}${cluster}</p>`;
}

export function renderProductPage(data: PageData): string {
  const body = `<h1>${escapeHtml(data.product.title)}</h1>
<div class="summary"><p>Summary: ${data.product.descriptionHtml}</p></div>
<div class="columns">
<section class="column details">
${renderDetails(data.details)}
</section>
<section class="column reviews">
${renderReviews(data.reviews)}
</section>
</div>`;
  return layout('Simple Bookstore App', userBar(data.user), body);
}
