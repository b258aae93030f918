import {
  transitions,
  type HistoryStore,
  type StoreCallOptions,
  type StoreChange,
} from '@retrospective/lock';
import type { Logger } from 'pino';
import type { EventRecorder, EventType } from './events.js';
import type { ControllerMetrics } from './metrics.js';

export interface TriggerDeps {
  readonly events: EventRecorder;
  readonly history: HistoryStore;
  readonly metrics: ControllerMetrics;
  readonly logger: Logger;
}

/**
 * Records an Event, but never lets its failure (EventRateLimit, a quota, a timeout) stop what
 * follows: an Event is a courtesy to operators, the history and the token floor are records.
 */
async function recordEvent(
  deps: TriggerDeps,
  lock: string,
  type: EventType,
  reason: string,
  message: string,
  options: StoreCallOptions,
): Promise<void> {
  try {
    await deps.events.record(lock, type, reason, message, options);
  } catch (error) {
    if (options.signal?.aborted) throw error;
    deps.logger.warn({ lock, reason, err: error }, 'could not record an Event');
  }
}

/** Event reasons; an expiry is `HoldExpired`, or `HandOverExpired` for a hand-over nobody took up. */
const reasons = { released: 'Released', expired: 'HoldExpired', forced: 'ForceReleased' } as const;

/**
 * What the leader records for one observed change: Events, the history, the hold duration, and
 * the token floor (every grant, and the last token of a deleted Lease), so that a Lease created
 * again hands out only higher tokens.
 */
export async function recordChange(
  deps: TriggerDeps,
  change: StoreChange,
  options: StoreCallOptions = {},
): Promise<void> {
  if (!change.next) {
    if (change.prev) await deps.history.raiseFloor(change.name, change.prev.token, options);
    return;
  }
  // A lock seen for the first time: its grants so far count too.
  if (!change.prev) await deps.history.raiseFloor(change.name, change.next.token, options);
  for (const event of transitions(change.prev, change.next)) {
    if (event.type === 'acquired') {
      await deps.history.raiseFloor(event.lock, event.token, options);
      await recordEvent(
        deps,
        event.lock,
        'Normal',
        'Acquired',
        `${event.holder} acquired ${event.lock} (token ${event.token})`,
        options,
      );
      continue;
    }
    const since = change.prev?.acquiredAt;
    const seconds = since
      ? Math.max(0, (event.releasedAt.getTime() - since.getTime()) / 1000)
      : undefined;
    if (seconds !== undefined) deps.metrics.holdDuration.observe({ lock: event.lock }, seconds);
    const held = seconds === undefined ? '' : ` after ${Math.round(seconds)} s`;
    const holder = change.prev?.holder ?? 'its holder';
    // Expired while still unclaimed, and before its own hold timeout: a hand-over not taken up.
    // (A hand-over taken up is confirmed, which clears the mark: one still there was never taken up.)
    const untaken = change.prev?.unclaimedSeconds;
    const notTakenUp = untaken !== undefined;
    const handOverExpired = event.reason === 'expired' && notTakenUp;
    const message = handOverExpired
      ? `the hand-over of ${event.lock} to ${holder} was not taken up within ${untaken} s (its api-server is gone)`
      : event.reason === 'expired'
        ? `the hold of ${holder} on ${event.lock} expired${held}`
        : event.reason === 'forced'
          ? `${event.releasedBy} force-released ${event.lock}, held by ${holder}${held}`
          : `${event.releasedBy} released ${event.lock}${held}`;
    await recordEvent(
      deps,
      event.lock,
      event.reason === 'released' ? 'Normal' : 'Warning',
      handOverExpired ? 'HandOverExpired' : reasons[event.reason],
      message,
      options,
    );
    await deps.history.append(
      event.lock,
      {
        token: event.token,
        lastEditor: event.lastEditor,
        releasedBy: event.releasedBy,
        releasedAt: event.releasedAt.toISOString(),
        reason: event.reason,
        content: event.content,
        // A hand-over nobody took up was never a hold: the waiter named holder never held it.
        ...(event.holder && !handOverExpired ? { holder: event.holder } : {}),
        ...(event.acquiredAt && !handOverExpired
          ? { acquiredAt: event.acquiredAt.toISOString() }
          : {}),
      },
      options,
    );
  }
}
