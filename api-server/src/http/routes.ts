import type { IncomingMessage, ServerResponse } from 'node:http';
import { Router, type Request, type Response } from 'express';
import type { LockPolicy } from '@retrospective/lock';
import type { Authorizer } from '../auth/authorizer.js';
import { clientAddress, originVerdict } from '../auth/origin.js';
import type { CommandPipeline, Verb } from '../commands/pipeline.js';
import type { Config } from '../config.js';
import { HttpError } from '../errors.js';
import { hasContent, readContent, readIfMatch } from '../validate.js';
import { readBody } from './body.js';
import { closeIfUnread, send, wantsJson } from './respond.js';

export interface LockRoutesDeps {
  readonly config: Config;
  readonly auth: Authorizer;
  readonly pipeline: CommandPipeline;
  readonly policy: (lock: string) => LockPolicy;
  /** The most content any lock accepts (each lock then checks its own limit). */
  readonly contentLimit: number;
}

const methods: Record<Verb, readonly string[]> = {
  check: ['GET', 'HEAD'],
  avail: ['GET', 'POST'],
  change: ['POST'],
  release: ['POST'],
};

/** The reason every hung-up request is aborted with: one object, not a DOMException each. */
const clientWentAway = new Error('The client went away.');

/** One lock command as a request brought it: routed by Express, or by the fast path. */
export interface CommandCall {
  readonly verb: Verb;
  readonly lock: string;
  /** The query's values (a key given twice is an array, which the readers refuse). */
  readonly query: Readonly<Record<string, unknown>>;
  readonly requestId: string;
  /** Whether to answer in JSON (else the sentence). */
  readonly json: () => boolean;
  /** change, release: the content the request carries (throws 400/415), or none. */
  readonly content?: (maxBytes: number) => string | undefined;
}

/** Runs one lock command through the pipeline and answers it. */
export type CommandRunner = (
  req: IncomingMessage,
  res: ServerResponse,
  call: CommandCall,
) => Promise<void>;

/**
 * The HTTP side of every lock command: who asks, from where, what the query and If-Match say, an
 * abort when the client hangs up; then the pipeline's answer, written. The Express routes and the
 * fast path (fast-commands.ts) both answer through it, so their answers cannot drift apart.
 */
export function commandRunner(
  deps: Pick<LockRoutesDeps, 'config' | 'auth' | 'pipeline' | 'policy'>,
): CommandRunner {
  const { config, auth, pipeline, policy } = deps;
  return async (req, res, call) => {
    const { verb, lock, query } = call;
    // Listening first: a client that hangs up during its auth review never joins the line.
    const gone = new AbortController();
    // Closed before the answer was sent: the client went away. (After it, nobody listens.)
    res.once('close', () => res.writableFinished || gone.abort(clientWentAway));
    const answer = await pipeline.run({
      transport: 'http',
      verb,
      lock,
      force: () => verb === 'release' && readForce(query.force),
      identify: (permission) => auth.identify(req, permission),
      origin: originVerdict(req, config),
      address: clientAddress(req, config.TRUSTED_PROXY_HOPS),
      requestId: call.requestId,
      input: () => ({
        wait: verb === 'avail' ? readWait(query.wait) : undefined,
        ttl: verb === 'avail' ? readTtl(query.ttl) : undefined,
        ifMatch: verb === 'check' ? undefined : readIfMatch(req),
        // release may carry the new content: written and released in one Lease update.
        content: call.content?.(policy(lock).maxContentBytes),
      }),
      signal: gone.signal,
    });
    const json = call.json();
    if (answer.ok) return send(res, 200, json, answer.body, answer.text);
    const body = { lock, error: answer.code, message: answer.message, ...answer.extra };
    // Answering before the request body was read: close rather than read the rest.
    const unread = closeIfUnread(req);
    send(res, answer.status, json, body, answer.message, { ...answer.headers, ...unread });
  };
}

/**
 * The seed's routes under /retrospective/ and the same verbs for every lock under /locks/<name>/:
 * a thin adapter from HTTP to the command pipeline and back.
 */
export function lockRoutes(deps: LockRoutesDeps): Router {
  const router = Router();
  const run = commandRunner(deps);
  const bodyLimit = deps.contentLimit;
  // JSON escapes can take six bytes per character of content.
  const parsers = [readBody({ text: bodyLimit, json: bodyLimit * 6 + 1024 })];

  for (const verb of Object.keys(methods) as Verb[]) {
    const handle = async (req: Request, res: Response) => {
      const param = req.params.lock;
      const lock = typeof param === 'string' ? param : 'retrospective';
      res.locals.lock = lock;
      if (!methods[verb].includes(req.method))
        throw new HttpError(
          405,
          'method_not_allowed',
          `Use ${methods[verb].join(' or ')} for ${verb}.`,
          { Allow: methods[verb].join(', ') },
        );
      await run(req, res, {
        verb,
        lock,
        query: req.query,
        requestId: (res.locals as { requestId: string }).requestId,
        json: () => wantsJson(req),
        content: (maxBytes) =>
          verb === 'change' || (verb === 'release' && hasContent(req))
            ? readContent(req, maxBytes)
            : undefined,
      });
    };
    const chain = verb === 'change' || verb === 'release' ? [...parsers, handle] : [handle];
    router.all(`/retrospective/${verb}`, ...chain);
    router.all(`/locks/:lock/${verb}`, ...chain);
  }
  return router;
}

/** `?wait=<seconds>` on avail: how long to wait in line; 0 when absent. */
function readWait(wait: unknown): number {
  if (wait === undefined) return 0;
  if (typeof wait !== 'string' || !/^\d{1,6}$/.test(wait))
    throw new HttpError(400, 'invalid_wait', 'Use wait=<seconds>, a whole number.');
  return Number(wait);
}

/** `?ttl=<seconds>` on avail: the hold's time-to-live (the lock's policy bounds it); none when absent. */
function readTtl(ttl: unknown): number | undefined {
  if (ttl === undefined) return undefined;
  if (typeof ttl !== 'string' || !/^\d{1,7}$/.test(ttl) || Number(ttl) < 1)
    throw new HttpError(400, 'invalid_ttl', 'Use ttl=<seconds>, a whole number of at least 1.');
  return Number(ttl);
}

/** `?force=true` on release: an admin's release of someone else's hold. */
function readForce(force: unknown): boolean {
  if (force === undefined || force === 'false') return false;
  if (force === 'true') return true;
  throw new HttpError(400, 'invalid_force', 'Use force=true or leave force out.');
}
