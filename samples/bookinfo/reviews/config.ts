// Version switches of the reviews service, read from its environment like Istio's reviews does.
import { envMs } from '../lib/upstream.ts';

export interface ReviewsConfig {
  /** v2 and v3 call ratings; v1 does not. */
  ratingsEnabled: boolean;
  /** Colour of the stars: `black` for v2, `red` for v3. */
  starColor: string;
  /** How long to wait for ratings: 10 s with black stars, 2.5 s otherwise, unless set. */
  ratingsTimeoutMs: number;
  podName: string;
  clusterName: string;
}

export function reviewsConfig(env: NodeJS.ProcessEnv, hostname: string): ReviewsConfig {
  const starColor = env.STAR_COLOR || 'black';
  return {
    ratingsEnabled: (env.ENABLE_RATINGS ?? '').toLowerCase() === 'true',
    starColor,
    ratingsTimeoutMs: envMs(env.RATINGS_TIMEOUT_MS, starColor === 'black' ? 10_000 : 2_500),
    podName: env.HOSTNAME || hostname,
    clusterName: env.CLUSTER_NAME ?? 'null',
  };
}
