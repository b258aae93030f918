import {
  RetrospectiveError,
  type Frame,
  type Hold,
  type RetrospectiveClient,
} from '@retrospective/client';
import { exitCodes } from './args.js';

/** One line on stderr, as every message of the CLI. */
export const say = (text: string) => process.stderr.write(`retrospective: ${text}\n`);

/** Ends the CLI with an exit code and one sentence on stderr. */
export class Exit extends Error {
  override readonly name = 'Exit';

  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export interface TakeFlags {
  readonly waitSeconds: number;
  readonly ttlSeconds: number;
}

/**
 * Takes `lock` (waiting in line up to --wait) and keeps it alive. On a terminal, shows who holds
 * the lock and your place in line while you wait, from the service's live frames.
 */
export async function takeAndHold(
  client: RetrospectiveClient,
  lock: string,
  flags: TakeFlags,
): Promise<Hold> {
  const progress =
    process.stderr.isTTY && flags.waitSeconds > 0 ? showProgress(client, lock) : undefined;
  try {
    const hold = await client.hold(lock, {
      waitSeconds: flags.waitSeconds,
      ttlSeconds: flags.ttlSeconds,
    });
    // From here a forced release or an expiry is noticed at once (renewals alone would take a
    // third of the TTL). A watch that cannot open leaves the renewals to notice.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      hold.watching.catch(() => {}),
      new Promise((resolve) => (timer = setTimeout(resolve, 5000))),
    ]);
    clearTimeout(timer);
    return hold;
  } catch (error) {
    if (
      error instanceof RetrospectiveError &&
      ['locked', 'queued', 'queue_full'].includes(error.code)
    )
      throw new Exit(
        exitCodes.notGranted,
        flags.waitSeconds > 0
          ? `Not granted within ${flags.waitSeconds} s: ${error.message}`
          : `${error.message} Use --wait 5m to wait in line.`,
      );
    throw error;
  } finally {
    progress?.();
  }
}

/** Live "held by ana, 2 ahead of you" on stderr; returns the way to stop and clear the line. */
function showProgress(client: RetrospectiveClient, lock: string): () => void {
  let holder: string | undefined;
  let waiting: readonly { user: string }[] = [];
  const draw = () => {
    const line = `waiting for ${lock}: ${holder ? `held by ${holder}` : 'free'}, ${waiting.length} in line`;
    process.stderr.write(`\r\x1b[K${line}`);
  };
  const onFrame = (frame: Frame) => {
    if (frame.type === 'snapshot') {
      const state = frame.locks.find((l) => l.lock === lock);
      holder = state?.holder;
      waiting = (state?.waiting ?? []).map((w) => ({ user: w.user ?? '' }));
    } else if (frame.type === 'acquired' && frame.lock === lock) holder = frame.holder;
    else if (frame.type === 'released' && frame.lock === lock) holder = undefined;
    else if (frame.type === 'queue' && frame.lock === lock) waiting = frame.waiting;
    else return;
    draw();
  };
  const watch = client.watch({ locks: [lock], onFrame });
  return () => {
    watch.close();
    process.stderr.write('\r\x1b[K');
  };
}
