import { refused, type Refused } from '../commands/refused.js';

/**
 * Token buckets per key (a user, an address): `perMinute` requests a minute on average, in bursts
 * of up to `perMinute`. Per replica: with N replicas behind a Service, a client may get up to N
 * times the limit. Idle keys are forgotten, so memory stays bounded by `maxKeys`.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perMs: number;

  constructor(
    private readonly perMinute: number,
    private readonly maxKeys = 100_000,
    private readonly now = () => performance.now(),
  ) {
    this.perMs = perMinute / 60_000;
  }

  get enabled(): boolean {
    return this.perMinute > 0;
  }

  /** Takes one request for `key`: 0 when allowed, otherwise the seconds until one would be. */
  take(key: string): number {
    if (!this.enabled) return 0;
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.perMinute, at: now };
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + (now - bucket.at) * this.perMs);
    bucket.at = now;
    if (bucket.tokens < 1) return Math.ceil((1 - bucket.tokens) / this.perMs / 1000);
    bucket.tokens -= 1;
    this.remember(key, bucket, now);
    return 0;
  }

  private remember(key: string, bucket: { tokens: number; at: number }, now: number): void {
    this.buckets.delete(key); // re-inserted last: the Map's order is least recently used first
    if (this.buckets.size >= this.maxKeys) {
      // A bucket that has refilled is the same as no bucket: forget those first.
      const full = (b: { tokens: number; at: number }) =>
        b.tokens + (now - b.at) * this.perMs >= this.perMinute;
      for (const [k, b] of this.buckets) if (full(b)) this.buckets.delete(k);
      const oldest = this.buckets.keys().next();
      if (this.buckets.size >= this.maxKeys && !oldest.done) this.buckets.delete(oldest.value);
    }
    this.buckets.set(key, bucket);
  }
}

/**
 * Takes one request for `key` from `limiter`: undefined when allowed; over the limit, counts it in
 * `limited` and answers 429 with Retry-After (nothing else is done for that request).
 */
export function overLimit(
  limiter: RateLimiter,
  key: string,
  scope: 'user' | 'address',
  limited: (scope: 'user' | 'address') => void,
): Refused | undefined {
  const wait = limiter.take(key);
  if (wait === 0) return undefined;
  limited(scope);
  return refused(
    429,
    'rate_limited',
    `Too many requests from this ${scope}; try again in ${wait} s.`,
    {
      'Retry-After': String(wait),
    },
  );
}
