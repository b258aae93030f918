import { RetrospectiveError, type RetrospectiveClient } from './client.js';
import type { Frame, Grant, Mutation } from './types.js';
import type { Watch } from './watch.js';

export interface HoldOptions {
  /** The hold's time-to-live in seconds; renewed every third of it (at least 1.1 s apart). */
  readonly ttlSeconds?: number;
  /** Renew this often without a TTL (the lock's own hold timeout may apply); 30 s by default. */
  readonly renewEverySeconds?: number;
}

/** How a hold ended without its holder releasing it. */
export interface Loss {
  /** `expired` (not renewed in time), `forced` (an admin), `released` (elsewhere), `deleted` (the lock), `unreachable`. */
  readonly reason: 'expired' | 'forced' | 'released' | 'deleted' | 'unreachable';
  /** Who ended it, when the service said. */
  readonly by?: string | undefined;
  readonly message: string;
}

/**
 * A hold kept alive: renewed in the background (each renewal pinned to this hold's token, so it
 * never takes the lock again once lost), and watched over the WebSocket so a forced release,
 * an expiry or a deleted lock is known within the watch delay. `signal` aborts on the loss.
 */
export class Hold {
  readonly token: number;
  readonly holder: string;
  /** Aborted, with the Loss as its reason, when the hold ends without `release()`. */
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly watcher: Watch;
  private timer: NodeJS.Timeout | undefined;
  /** Fires when no renewal succeeded for most of the TTL: the hold must be taken for lost. */
  private watchdog: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    private readonly client: RetrospectiveClient,
    readonly lock: string,
    grant: Grant,
    private readonly options: HoldOptions = {},
  ) {
    if (grant.token === undefined) throw new Error('A grant without a token cannot be held.');
    this.token = grant.token;
    this.holder = grant.holder;
    this.signal = this.controller.signal;
    // Resume just before this hold: a release of it that happened before the socket opened is
    // replayed, and the snapshot shows whether it still stands.
    this.watcher = client.watch({
      locks: [lock],
      since: new Map([[lock, this.token - 1]]),
      onFrame: (frame) => this.observe(frame),
    });
    this.armWatchdog(Date.now());
    this.schedule();
  }

  /** Settles once the watch is subscribed (a loss is noticed from then on within milliseconds). */
  get watching(): Promise<void> {
    return this.watcher.opened;
  }

  /** The loss, once the hold is lost. */
  get loss(): Loss | undefined {
    return this.signal.aborted ? (this.signal.reason as Loss) : undefined;
  }

  /** Releases the hold (pinned to its token); with `content`, writes it in the same update. */
  async release(content?: string): Promise<Mutation> {
    this.stop();
    return this.client.release(this.lock, {
      token: this.token,
      ...(content === undefined ? {} : { content }),
    });
  }

  /** Stops renewing and watching, without releasing (the hold then ends by its TTL). */
  stop(): void {
    this.ended = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    this.watcher.close();
  }

  private isEnded(): boolean {
    return this.ended;
  }

  private get everyMs(): number {
    const ttl = this.options.ttlSeconds;
    // A third of the TTL, as etcd's clients renew; at least 1.1 s, since the service answers
    // renewals closer than a second to the last one without a write (which would not count).
    return ttl ? Math.max(1100, (ttl * 1000) / 3) : (this.options.renewEverySeconds ?? 30) * 1000;
  }

  private schedule(delay = this.everyMs): void {
    if (this.ended) return;
    this.timer = setTimeout(() => void this.renew(), delay);
  }

  /**
   * With a TTL, the service expires the hold once it was not renewed for that long, counted from
   * a renewal's arrival, which is after it was sent: a hold whose last successful renewal was
   * *sent* more than TTL minus a margin ago is taken for lost here, whatever the network does
   * (a connection that hangs without a reset would otherwise keep a command running unheld).
   */
  private armWatchdog(sentAt: number): void {
    const ttl = this.options.ttlSeconds;
    if (!ttl) return;
    clearTimeout(this.watchdog);
    const margin = Math.min(1000, (ttl * 1000) / 6);
    this.watchdog = setTimeout(
      () =>
        this.lose({
          reason: 'unreachable',
          message: `Could not renew the hold on ${this.lock} (token ${this.token}) within its ${ttl} s time-to-live; it may have expired.`,
        }),
      sentAt + ttl * 1000 - margin - Date.now(),
    );
  }

  private async renew(): Promise<void> {
    if (this.ended) return;
    const sentAt = Date.now();
    try {
      // Pinned to this hold's token, without `ttl` (a renewal keeps the hold's own), and cut
      // off after one renewal period so that a hung connection is retried, not waited on.
      await this.client.avail(this.lock, {}, AbortSignal.timeout(this.everyMs), this.token);
      this.armWatchdog(sentAt);
      this.schedule();
    } catch (error) {
      // stop() may have run while the renewal was in flight.
      if (this.isEnded()) return;
      if (
        error instanceof RetrospectiveError &&
        error.status !== 0 &&
        error.status < 500 &&
        error.status !== 429
      ) {
        const gone = error.code === 'unknown_lock';
        return this.lose({
          reason: gone ? 'deleted' : 'expired',
          message: gone
            ? `The lock ${this.lock} was deleted.`
            : `The hold on ${this.lock} (token ${this.token}) ended: ${error.message}`,
        });
      }
      // Not reachable, timed out, or busy: try again soon; the watchdog ends it in time.
      this.schedule(Math.min(1000, this.everyMs));
    }
  }

  private observe(frame: Frame): void {
    if (this.ended) return;
    if (frame.type === 'snapshot') {
      const state = frame.locks.find((l) => l.lock === this.lock);
      if (!state)
        return this.lose({ reason: 'deleted', message: `The lock ${this.lock} is gone.` });
      if (state.token === this.token && state.holder !== this.holder)
        return this.lose({
          reason: state.releaseReason === 'forced' ? 'forced' : 'expired',
          by: state.releasedBy,
          message: `The hold on ${this.lock} (token ${this.token}) ended before it was watched.`,
        });
      if (state.token > this.token)
        return this.lose({
          reason: 'expired',
          message: `${this.lock} was granted again (token ${state.token}) after this hold.`,
        });
      return;
    }
    if (frame.type === 'released' && frame.lock === this.lock && frame.token === this.token) {
      const reason = frame.reason;
      return this.lose({
        reason,
        by: frame.releasedBy,
        message:
          reason === 'forced'
            ? `${frame.releasedBy} force-released ${this.lock} (token ${this.token}).`
            : reason === 'expired'
              ? `The hold on ${this.lock} (token ${this.token}) expired: it was not renewed within its time-to-live.`
              : `${this.lock} (token ${this.token}) was released by ${frame.releasedBy}.`,
      });
    }
    if (frame.type === 'acquired' && frame.lock === this.lock && frame.token > this.token)
      return this.lose({
        reason: 'expired',
        message: `${this.lock} was granted to ${frame.holder} (token ${frame.token}).`,
      });
    if (frame.type === 'removed' && frame.lock === this.lock)
      return this.lose({ reason: 'deleted', message: `The lock ${this.lock} was deleted.` });
  }

  private lose(loss: Loss): void {
    if (this.ended) return;
    this.stop();
    this.controller.abort(loss);
  }
}
