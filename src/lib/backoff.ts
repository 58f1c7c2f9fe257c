/** Exponential backoff with full jitter, so a fleet of proxies does not reconnect in lock step. */
export function backoffDelay(
  attempt: number,
  baseMs = 100,
  maxMs = 5000,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
