import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { Hold, Loss, RetrospectiveClient } from '@retrospective/client';
import { exitCodes } from './args.js';
import { say, takeAndHold, type TakeFlags } from './take.js';

export interface LockFlags extends TakeFlags {
  /** Seconds between SIGTERM and SIGKILL when the hold is lost. */
  readonly graceSeconds: number;
}

/**
 * `retrospective lock NAME -- CMD ARGS...`: runs CMD only while holding the lock. CMD gets the
 * lock's name, holder and fencing token in its environment; the hold is renewed while it runs and
 * released (pinned to its token) when it exits; the CLI exits with CMD's status (128+n when a
 * signal ended it). A lost hold stops CMD (SIGTERM, then SIGKILL after the grace period) and
 * exits 125.
 */
export async function runLocked(
  client: RetrospectiveClient,
  lock: string,
  command: readonly string[],
  flags: LockFlags,
): Promise<number> {
  const [program, ...args] = command;
  if (program === undefined) throw new Error('No command to run.');
  const hold = await takeAndHold(client, lock, flags);
  // Lost while the watch was opened (forced, expired, or granted again): CMD never starts.
  if (hold.loss) {
    say(`${hold.loss.message} ${program} was not started.`);
    return exitCodes.lost;
  }
  // With a terminal, CMD stays in the foreground group (editors, prompts, Ctrl-C work); without,
  // it leads a group of its own so that stopping it stops its children too.
  const detached = !process.stdin.isTTY;
  let child: ChildProcess;
  try {
    child = spawn(program, args, {
      stdio: 'inherit',
      detached,
      env: {
        ...process.env,
        RETROSPECTIVE_LOCK: lock,
        RETROSPECTIVE_HOLDER: hold.holder,
        RETROSPECTIVE_FENCING_TOKEN: String(hold.token),
      },
    });
  } catch (error) {
    await release(hold);
    throw error;
  }
  // Detached, the whole group is signalled, even once its leader has exited (its children may
  // still run); on a terminal only CMD itself can be (it shares the terminal's group).
  const signal = (name: NodeJS.Signals) => {
    if (child.pid === undefined) return;
    try {
      if (detached) process.kill(-child.pid, name);
      else if (child.exitCode === null && child.signalCode === null) child.kill(name);
    } catch {
      // Already gone.
    }
  };

  let lost: Loss | undefined;
  let killer: NodeJS.Timeout | undefined;
  const onLoss = () => {
    lost = hold.signal.reason as Loss;
    say(
      `${lost.message} Stopping ${program} (SIGTERM, then SIGKILL after ${flags.graceSeconds} s).`,
    );
    signal('SIGTERM');
    killer = setTimeout(() => signal('SIGKILL'), flags.graceSeconds * 1000);
  };
  hold.signal.addEventListener('abort', onLoss, { once: true });

  // Signals sent to the CLI go to CMD; Ctrl-C already reaches a CMD in the foreground group.
  const forward = (name: NodeJS.Signals) => () => {
    if (name !== 'SIGINT' || detached) signal(name);
  };
  const forwarded = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((name) => {
    const listener = forward(name);
    process.on(name, listener);
    return () => process.off(name, listener);
  });

  const status = await new Promise<number>((resolve) => {
    child.once('error', (error: NodeJS.ErrnoException) => {
      say(`cannot run ${program}: ${error.message}`);
      resolve(error.code === 'ENOENT' ? exitCodes.notFound : exitCodes.cannotRun);
    });
    child.once('exit', (code, name) => resolve(code ?? 128 + (name ? constants.signals[name] : 0)));
  });
  clearTimeout(killer);
  for (const stop of forwarded) stop();
  hold.signal.removeEventListener('abort', onLoss);
  if (lost) {
    // Nothing CMD started may go on once the hold is gone.
    signal('SIGKILL');
    return exitCodes.lost;
  }
  await release(hold);
  return status;
}

/** Releases with the hold's token; a hold that ended meanwhile is said, not an error. */
async function release(hold: Hold): Promise<void> {
  try {
    await hold.release();
  } catch (error) {
    say(`could not release ${hold.lock} (token ${hold.token}): ${(error as Error).message}`);
  }
}
