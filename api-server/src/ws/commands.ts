import { randomUUID } from 'node:crypto';
import type { RawData } from 'ws';
import { z } from 'zod';
import type { CommandPipeline } from '../commands/pipeline.js';
import type { Config } from '../config.js';
import { badRequest } from '../errors.js';
import type { SocketClient } from './broadcaster.js';

/** What a client may send on /ws: take the lock (waiting in line up to `wait` s) or release it. */
const command = z
  .object({
    type: z.enum(['avail', 'release']),
    lock: z.string().max(63),
    /** Cut to WAIT_MAX_SECONDS, as on HTTP. */
    wait: z.number().int().min(0).max(999_999).optional(),
    /** avail: the hold's time-to-live in seconds, as `avail?ttl=` (the lock's policy bounds it). */
    ttl: z.number().int().min(1).max(9_999_999).optional(),
    /** Echoed in the reply, to match replies to commands. */
    id: z.string().max(64).optional(),
  })
  .strict();

export type SocketCommand = z.infer<typeof command>;

export interface SocketCommandsDeps {
  readonly config: Config;
  readonly pipeline: CommandPipeline;
}

/**
 * The commands the management view sends over its WebSocket: a thin adapter to the command
 * pipeline (the HTTP routes' rules, limits, metrics and audit lines), answered with one `reply`
 * frame each.
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

  /** Runs `cmd` for `client`; its wait in line ends when the socket closes. */
  async run(cmd: SocketCommand, client: SocketClient) {
    const { config, pipeline } = this.deps;
    const reply = { type: 'reply', id: cmd.id, lock: cmd.lock, command: cmd.type };
    const answer = await pipeline.run({
      transport: 'ws',
      verb: cmd.type,
      lock: cmd.lock,
      force: () => false,
      identify: async () => {
        if (!client.who)
          throw badRequest(
            'missing_username',
            `Connect with your name in the ${config.USERNAME_HEADER} header to take locks.`,
          );
        return client.who;
      },
      origin: client.origin,
      address: client.address,
      requestId: randomUUID(),
      input: () => ({ wait: cmd.wait, ttl: cmd.type === 'avail' ? cmd.ttl : undefined }),
      signal: client.gone.signal,
    });
    if (answer.ok) return { ...reply, ok: true, status: answer.outcome, token: answer.token };
    return { ...reply, ok: false, error: answer.code, message: answer.message };
  }
}
