import type { Logger } from 'pino';

/**
 * Logs the first occurrence of each message per interval and counts the rest, reporting the count
 * with the next line: a flood of failures (bad tokens, an overloaded API server) costs a few log
 * lines a minute, not one per request.
 */
export class SampledLog {
  private readonly suppressed = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly logger: Pick<Logger, 'warn'>,
    private readonly intervalMs = 60_000,
    private readonly now = () => performance.now(),
  ) {}

  /** `key` samples a message per something it names (a lock), not once for all. */
  warn(message: string, fields: Record<string, unknown> = {}, key = ''): void {
    const now = this.now();
    const id = key ? `${message}\u0000${key}` : message;
    const seen = this.suppressed.get(id);
    if (seen && now - seen.since < this.intervalMs) {
      seen.count++;
      return;
    }
    this.suppressed.set(id, { count: 0, since: now });
    const more = seen?.count ? { suppressed: seen.count } : {};
    this.logger.warn({ ...fields, ...more }, message);
    // Bounded: the messages are the caller's own constants, but keep it small regardless.
    if (this.suppressed.size > 100) this.suppressed.clear();
  }
}
