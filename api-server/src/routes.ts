import { Router, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { Action, Command, LockService, LockState, MutationResult } from '@retrospective/lock';
import type { Authorizer, Identity, Permission } from './auth.js';
import type { Config } from './config.js';
import { HttpError, refusalStatus, toHttpError } from './errors.js';
import type { Metrics } from './metrics.js';
import { readBody } from './body.js';
import { checkBody, checkText, describeRefusal, retryAfter, title } from './present.js';
import { reply } from './respond.js';
import { originAllowed } from './origin.js';
import { takeOrRefuse, type RateLimiter } from './rate-limit.js';
import { readContent, readIfMatch } from './validate.js';
import type { WaitingRoom } from './waiting.js';

export interface LockRoutesDeps {
  readonly config: Config;
  readonly service: LockService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: () => Date;
  readonly auth: Authorizer;
  /** Mutations per user and per client address. */
  readonly limits: { readonly user: RateLimiter; readonly address: RateLimiter };
  /** Blocking acquire: avail?wait=<seconds>. */
  readonly room: WaitingRoom;
}

type Verb = 'check' | 'avail' | 'change' | 'release';
const methods: Record<Verb, readonly string[]> = {
  check: ['GET', 'HEAD'],
  avail: ['GET', 'POST'],
  change: ['POST'],
  release: ['POST'],
};

/** The seed's routes under /retrospective/ and the same verbs for every lock under /locks/<name>/. */
export function lockRoutes(deps: LockRoutesDeps): Router {
  const { config, service, metrics, logger, clock, auth, limits, room } = deps;
  const router = Router();
  const bodyLimit = config.MAX_CONTENT_BYTES;
  // JSON escapes can take six bytes per character of content.
  const parsers = [readBody({ text: bodyLimit, json: bodyLimit * 6 + 1024 })];

  /** Raises the refusal of a failed result as its HTTP answer. */
  const succeeded = (lock: string, action: Action, command: Command, result: MutationResult) => {
    if (result.ok) return result;
    const { refusal } = result;
    if (result.raced) metrics.lockRaces.inc({ lock, action });
    const { message, extra } = describeRefusal(
      refusal,
      'ifMatch' in command ? command.ifMatch : undefined,
    );
    const headers: Record<string, string> = {};
    if (refusal.code === 'locked')
      headers['Retry-After'] = String(retryAfter(refusal.state, clock()));
    if (refusal.code === 'queued' || refusal.code === 'queue_full') headers['Retry-After'] = '5';
    throw new HttpError(refusalStatus[refusal.code], refusal.code, message, headers, extra);
  };
  const execute = async (lock: string, action: Action, command: Command) =>
    succeeded(lock, action, command, await service.execute(lock, command));

  /** The request's logger: the same keys on every line (requestId, lock, user). */
  const log = (res: Response, lock: string) =>
    logger.child({ requestId: (res.locals as { requestId?: string }).requestId, lock });

  /** 429 when the caller's address or user is over its limit; nothing is read or written then. */
  const limit = (req: Request, who: Identity) => {
    const limited = (scope: 'user' | 'address') => metrics.rateLimited.inc({ scope });
    takeOrRefuse(
      limits.address,
      req.ip ?? req.socket.remoteAddress ?? 'unknown',
      'address',
      limited,
    );
    takeOrRefuse(limits.user, who.user, 'user', limited);
  };

  type Handler = (req: Request, res: Response, lock: string, user: string) => Promise<string>;
  const handlers: Record<Verb, Handler> = {
    check: async (req, res, lock) => {
      const state = service.state(lock);
      const now = clock();
      reply(req, res, 200, checkBody(state, now), checkText(state, now));
      return state.holder ? 'held' : 'available';
    },
    avail: async (req, res, lock, user) => {
      const command = {
        kind: 'avail',
        user,
        holdTimeoutSeconds: config.HOLD_TIMEOUT_SECONDS,
      } as const;
      const wait = readWait(req, config.WAIT_MAX_SECONDS);
      // The client going away (not the answer being sent) takes its waiter out of the line.
      const gone = new AbortController();
      res.once('close', () => gone.abort());
      const result = wait
        ? await room.avail(lock, user, command.holdTimeoutSeconds, wait, gone.signal)
        : await service.execute(lock, command);
      const { state, outcome } = succeeded(lock, 'avail', command, result);
      const status = outcome === 'renewed' ? 'renewed' : 'granted';
      const text =
        status === 'renewed'
          ? `You already hold ${title(lock)}; hold renewed (token ${state.token}).`
          : `Access to ${title(lock)} Granted to ${user} (token ${state.token}).`;
      // No ETag: this GET takes the lock, and a validator would invite a 304 from a cache.
      reply(req, res, 200, grantBody(state, status), text);
      log(res, lock).info(
        { user, action: 'avail', outcome: status, token: state.token },
        'lock command',
      );
      return status;
    },
    change: async (req, res, lock, user) => {
      const content = readContent(req, config.MAX_CONTENT_BYTES);
      const ifMatch = readIfMatch(req);
      const { state } = await execute(lock, 'change', {
        kind: 'change',
        user,
        content,
        ifMatch,
      });
      const bytes = Buffer.byteLength(content);
      reply(
        req,
        res,
        200,
        { lock, status: 'updated', token: state.token, bytes },
        `${title(lock)} Updated (${bytes} bytes).`,
      );
      log(res, lock).info({ user, action: 'change', outcome: 'updated', bytes }, 'lock command');
      return 'updated';
    },
    release: async (req, res, lock, user) => {
      if (readForce(req)) {
        const { state } = await execute(lock, 'force', { kind: 'force', by: user });
        reply(
          req,
          res,
          200,
          { lock, status: 'released', reason: 'forced', token: state.token },
          `${title(lock)} Released (forced by ${user}).`,
        );
        log(res, lock).warn(
          { user, action: 'force', outcome: 'forced', token: state.token },
          'lock command',
        );
        return 'forced';
      }
      const ifMatch = readIfMatch(req);
      const { state } = await execute(lock, 'release', { kind: 'release', user, ifMatch });
      reply(
        req,
        res,
        200,
        { lock, status: 'released', token: state.token },
        `${title(lock)} Released.`,
      );
      log(res, lock).info(
        { user, action: 'release', outcome: 'released', token: state.token },
        'lock command',
      );
      return 'released';
    },
  };

  for (const verb of Object.keys(handlers) as Verb[]) {
    const handle = async (req: Request, res: Response) => {
      const param = req.params.lock;
      const lock = typeof param === 'string' ? param : 'retrospective';
      res.locals.lock = lock;
      if (!methods[verb].includes(req.method)) {
        throw new HttpError(
          405,
          'method_not_allowed',
          `Use ${methods[verb].join(' or ')} for ${verb}.`,
          {
            Allow: methods[verb].join(', '),
          },
        );
      }
      let outcome = 'error';
      try {
        const permission: Permission =
          verb === 'check'
            ? 'view'
            : verb === 'release' && readForce(req)
              ? 'force-release'
              : 'hold';
        const who = await auth.identify(req, permission);
        if (!service.has(lock))
          throw new HttpError(404, 'unknown_lock', `There is no lock named "${lock}".`);
        if (permission !== 'view' && !originAllowed(req, config))
          throw new HttpError(
            403,
            'forbidden_origin',
            "Browsers may change locks only from the service's own pages or ALLOWED_ORIGINS.",
          );
        await auth.authorize(who, permission, lock);
        if (who && permission !== 'view') limit(req, who);
        outcome = await handlers[verb](req, res, lock, who?.user ?? '');
      } catch (error) {
        outcome = toHttpError(error).code;
        throw error;
      } finally {
        metrics.lockRequests.inc({ lock, action: verb, outcome });
      }
    };
    const chain = verb === 'change' ? [...parsers, handle] : [handle];
    router.all(`/retrospective/${verb}`, ...chain);
    router.all(`/locks/:lock/${verb}`, ...chain);
  }
  return router;
}

/** `?wait=<seconds>` on avail: how long to wait in line, cut to `max`; 0 when absent. */
function readWait(req: Request, max: number): number {
  const wait = req.query.wait;
  if (wait === undefined) return 0;
  if (typeof wait !== 'string' || !/^\d{1,6}$/.test(wait))
    throw new HttpError(400, 'invalid_wait', 'Use wait=<seconds>, a whole number.');
  return Math.min(Number(wait), max);
}

/** `?force=true` on release: an admin's release of someone else's hold. */
function readForce(req: Request): boolean {
  const force = req.query.force;
  if (force === undefined || force === 'false') return false;
  if (force === 'true') return true;
  throw new HttpError(400, 'invalid_force', 'Use force=true or leave force out.');
}

function grantBody(state: LockState, status: 'granted' | 'renewed') {
  return {
    lock: state.name,
    status,
    holder: state.holder,
    since: state.acquiredAt?.toISOString(),
    token: state.token,
  };
}
