import type { LockService } from '@retrospective/lock';
import type { RawData } from 'ws';
import { z } from 'zod';
import type { Authorizer, Identity } from './auth.js';
import type { Config } from './config.js';
import { HttpError, toHttpError } from './errors.js';
import type { Metrics } from './metrics.js';
import { describeRefusal } from './present.js';
import { takeOrRefuse, type RateLimiter } from './rate-limit.js';
import type { WaitingRoom } from './waiting.js';

/** What a client may send on /ws: take the lock (waiting in line up to `wait` s) or release it. */
const command = z
  .object({
    type: z.enum(['avail', 'release']),
    lock: z.string().max(63),
    wait: z.number().int().min(0).max(3600).optional(),
    /** Echoed in the reply, to match replies to commands. */
    id: z.string().max(64).optional(),
  })
  .strict();

export type SocketCommand = z.infer<typeof command>;

export interface SocketCommandsDeps {
  readonly config: Config;
  readonly service: LockService;
  readonly room: WaitingRoom;
  readonly auth: Authorizer;
  readonly userLimit: RateLimiter;
  readonly metrics: Metrics;
}

/**
 * The commands the management view sends over its WebSocket: the same rules as the HTTP routes
 * (who may hold, rate limits, the waiting line), answered with one `reply` frame each.
 */
export class SocketCommands {
  constructor(private readonly deps: SocketCommandsDeps) {}

  /** The command in a frame, or undefined when the frame is not one (the client is dropped). */
  parse(data: RawData, isBinary: boolean): SocketCommand | undefined {
    if (isBinary) return undefined;
    try {
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.isBuffer(data)
          ? data.toString('utf8')
          : Buffer.from(new Uint8Array(data)).toString('utf8');
      const parsed = command.safeParse(JSON.parse(text));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  /** Runs `cmd` as `who`; `gone` aborts a wait when the socket closes. */
  async run(cmd: SocketCommand, who: Identity | undefined, gone: AbortSignal) {
    const { config, service, room, auth, userLimit, metrics } = this.deps;
    const reply = { type: 'reply', id: cmd.id, lock: cmd.lock, command: cmd.type };
    let outcome = 'error';
    try {
      if (!who)
        throw new HttpError(
          400,
          'missing_username',
          `Connect with your name in the ${config.USERNAME_HEADER} header to take locks.`,
        );
      if (!service.has(cmd.lock))
        throw new HttpError(404, 'unknown_lock', `There is no lock named "${cmd.lock}".`);
      await auth.authorize(who, 'hold', cmd.lock);
      takeOrRefuse(userLimit, who.user, 'user', (scope) => metrics.rateLimited.inc({ scope }));
      const result =
        cmd.type === 'avail'
          ? await room.avail(
              cmd.lock,
              who.user,
              config.HOLD_TIMEOUT_SECONDS,
              Math.min(cmd.wait ?? 0, config.WAIT_MAX_SECONDS),
              gone,
            )
          : await service.execute(cmd.lock, { kind: 'release', user: who.user });
      if (!result.ok) {
        outcome = result.refusal.code;
        const { message } = describeRefusal(result.refusal, undefined);
        return { ...reply, ok: false, error: result.refusal.code, message };
      }
      outcome = result.outcome;
      return { ...reply, ok: true, status: result.outcome, token: result.state.token };
    } catch (error) {
      const http = toHttpError(error);
      outcome = http.code;
      return { ...reply, ok: false, error: http.code, message: http.message };
    } finally {
      if (service.has(cmd.lock))
        metrics.lockRequests.inc({ lock: cmd.lock, action: cmd.type, outcome });
    }
  }
}
