import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import {
  heldSeconds,
  isHeld,
  type HistoryEntry,
  type LockPolicy,
  type LockState,
} from '@retrospective/lock';
import { readinessAnswer } from '@retrospective/runtime';
import type { Permission } from '../auth/authorizer.js';
import type { CommandPipeline } from '../commands/pipeline.js';
import { HttpError, toHttpError } from '../errors.js';
import { openapi } from '../openapi.js';
import type { AppDeps } from '../app.js';
import { answerHeaders, closeIfUnread, reply, requestIdOf } from './respond.js';
import { lockRoutes } from './routes.js';
import { parseLocks } from '../ws/upgrade.js';
import { maxSubscribedLocks } from '../ws/viewable.js';

const publicDir = resolve(import.meta.dirname, '../../public');
const csp =
  "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'";

export interface ExpressAppDeps extends AppDeps {
  readonly clock: () => Date;
  readonly auth: NonNullable<AppDeps['auth']>;
  readonly pipeline: CommandPipeline;
  /** Each served lock's policy. */
  readonly policy: (lock: string) => LockPolicy;
  /** The most content any lock accepts: what a request body may carry. */
  readonly contentLimit: number;
}

/** Per-lock permission checks one `GET /locks` may cost (a caller not allowed every lock). */
const maxListChecks = 200;

/** One lock in `GET /locks`: enough to show a table; `check` has the rest. */
function listItem(lock: string, state: LockState | undefined, now: Date, waiting?: number) {
  if (!state) return { lock, provisioned: false as const };
  const seconds = heldSeconds(state, now);
  return {
    lock,
    available: !isHeld(state),
    holder: state.holder,
    since: state.acquiredAt?.toISOString(),
    heldSeconds: seconds === undefined ? undefined : Math.floor(seconds),
    token: state.token,
    waiting,
  };
}

/** `GET /locks` query: `limit` (1-500, 100), `continue` (the last name of the page before), `search`, `held`. */
function readListQuery(query: Request['query']) {
  const one = (key: string) => {
    const value = query[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string')
      throw new HttpError(400, 'invalid_query', `Give ${key} once, as a plain value.`);
    return value;
  };
  const limit = one('limit') ?? '100';
  if (!/^\d{1,3}$/.test(limit) || Number(limit) < 1 || Number(limit) > 500)
    throw new HttpError(400, 'invalid_limit', 'limit must be a whole number from 1 to 500.');
  const after = one('continue') ?? '';
  const search = one('search') ?? '';
  if (after.length > 63 || search.length > 63)
    throw new HttpError(
      400,
      'invalid_query',
      'continue and search are lock names or parts of one (at most 63 characters).',
    );
  const held = one('held');
  if (held !== undefined && held !== 'true' && held !== 'false')
    throw new HttpError(400, 'invalid_query', 'held must be true or false.');
  return {
    limit: Number(limit),
    after,
    search,
    held: held === undefined ? undefined : held === 'true',
  };
}

/** Releases served at most this many at a time (`?limit=`, newest last). */
const maxHistoryLimit = 500;

/**
 * The history of one lock as JSON, serialised once per version of it (the history store hands out
 * the same array while it is unchanged), not once per request.
 */
function historyRenderer() {
  const rendered = new WeakMap<readonly HistoryEntry[], string>();
  return (entries: readonly HistoryEntry[]): string => {
    let json = rendered.get(entries);
    if (json === undefined) {
      json = JSON.stringify(entries);
      rendered.set(entries, json);
    }
    return json;
  };
}

/** The Express part of the API: lock routes, history, who-am-I, probes, the view, errors. */
export function expressApp(deps: ExpressAppDeps) {
  const { config, service, metrics, logger, lifecycle, auth, pipeline } = deps;
  const view = Object.fromEntries(
    ['index.html', 'view.js', 'view.css'].map((f) => [f, readFileSync(resolve(publicDir, f))]),
  );
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // req.ip: the client's address as the trusted proxies in front report it.
  app.set('trust proxy', config.TRUSTED_PROXY_HOPS);

  app.use((req: Request, res: Response, next: NextFunction) => {
    const started = performance.now();
    const id = requestIdOf(req.headers['x-request-id']);
    res.locals.requestId = id;
    res.set(answerHeaders(id));
    res.on('finish', () => {
      const path = (req.route as { path?: unknown } | undefined)?.path;
      const route = typeof path === 'string' ? path : 'unmatched';
      metrics.httpDuration.observe(
        { route, method: req.method, code: String(res.statusCode) },
        (performance.now() - started) / 1000,
      );
    });
    next();
  });

  app.use(
    lockRoutes({ config, auth, pipeline, policy: deps.policy, contentLimit: deps.contentLimit }),
  );
  const render = historyRenderer();
  app.get('/locks/:lock/history', async (req, res) => {
    const { lock } = req.params;
    const who = await auth.identify(req, 'view');
    service.state(lock); // 404 for unknown locks, 503 when not provisioned
    await auth.authorize(who, 'view', lock);
    const limit = readLimit(req.query.limit);
    const entries = deps.history ? await deps.history(lock) : [];
    const releases = limit === undefined ? entries : entries.slice(-limit);
    const json = limit === undefined ? render(entries) : JSON.stringify(releases);
    // `kept`: how many releases the history keeps (a full one may not reach back far enough).
    const body = `{"lock":${JSON.stringify(lock)},"kept":${config.HISTORY_SIZE},"releases":${json}}`;
    res.status(200);
    if (req.accepts(['text/plain', 'application/json']) === 'application/json')
      res.type('application/json').send(body);
    else res.type('text/plain; charset=utf-8').send(`${json}\n`);
  });
  // Every lock the caller may view, with its state: sorted by name, filtered, a page at a time.
  app.get('/locks', async (req, res) => {
    const who = await auth.identify(req, 'view');
    const query = readListQuery(req.query);
    const now = deps.clock();
    const names = [...service.locks].sort().filter((name) => name > query.after);
    // One namespace-wide review first; only a caller limited to some locks costs one per lock,
    // and at most maxListChecks a request (the page then ends early, with a continue).
    const everything = await auth.allowed(who, 'view', '');
    const items: ReturnType<typeof listItem>[] = [];
    let next: string | undefined;
    let examined: string | undefined;
    let checks = 0;
    // Whether a lock matches the search and the held filter (RBAC is checked on its own).
    const matches = (name: string) => {
      if (query.search && !name.includes(query.search)) return false;
      const state = service.peek(name);
      return query.held === undefined || (state !== undefined && isHeld(state)) === query.held;
    };
    for (const [index, name] of names.entries()) {
      if (items.length === query.limit) {
        // A next page only when some lock after this one matches: a page that ends the matches
        // says so, rather than leading to an empty one.
        if (names.slice(index).some(matches)) next = examined;
        break;
      }
      if (!everything && checks === maxListChecks) {
        next = examined;
        break;
      }
      examined = name;
      if (!matches(name)) continue;
      const state = service.peek(name);
      if (!everything) {
        checks++;
        if (!(await auth.allowed(who, 'view', name))) continue;
      }
      if (service.has(name))
        items.push(listItem(name, state, now, state && service.liveQueue(state).length));
    }
    const body = { locks: items, ...(next ? { continue: next } : {}) };
    const text = items
      .map((i) => `${i.lock}\t${i.holder ?? '-'}\t${i.token ?? '-'}\t${i.waiting ?? 0}`)
      .join('\n');
    reply(req, res, 200, body, text);
  });
  // Who the caller is and what they may do to each lock: the view shows its buttons from this.
  app.get('/api/me', async (req, res) => {
    const who = await auth.identify(req, 'view');
    const asked = req.query.locks;
    const named = parseLocks(typeof asked === 'string' ? asked : asked === undefined ? null : '');
    if (named instanceof Error) throw new HttpError(400, 'invalid_query', named.message);
    // Three reviews per lock: a page of the view asks about the locks it shows.
    if (!named && service.locks.length > maxSubscribedLocks)
      throw new HttpError(
        400,
        'too_many_locks',
        `More than ${maxSubscribedLocks} locks are served: name the ones you want with ?locks=.`,
      );
    // Names that are not locks (any more) are left out: a lock deleted since the page listed it.
    const asking = named ? [...named].filter((lock) => service.has(lock)) : service.locks;
    const permissions: Permission[] = ['view', 'hold', 'force-release'];
    // One namespace-wide review per permission first; per lock only for what that refused.
    const everywhere = await Promise.all(permissions.map((p) => auth.allowed(who, p, '')));
    const locks = Object.fromEntries(
      await Promise.all(
        asking.map(
          async (lock) =>
            [
              lock,
              Object.fromEntries(
                await Promise.all(
                  permissions.map(
                    async (p, i) =>
                      [p, everywhere[i] === true || (await auth.allowed(who, p, lock))] as const,
                  ),
                ),
              ),
            ] as const,
        ),
      ),
    );
    const body = { user: who?.user, mode: auth.mode, locks };
    reply(req, res, 200, body, JSON.stringify(body, null, 2));
  });
  app.get('/healthz', (_req, res) => res.type('text/plain').send('ok\n'));
  app.get('/ping', (_req, res) => res.type('text/plain').send('pong\n'));
  app.get('/readyz', (_req, res) => {
    const { status, body } = readinessAnswer(lifecycle);
    res.status(status).type('text/plain').send(body);
  });
  app.get('/openapi.json', (_req, res) => res.json(openapi));
  const page = (file: string, type: string) => (_req: Request, res: Response) => {
    res.set('Content-Security-Policy', csp).type(type).send(view[file]);
  };
  app.get('/', page('index.html', 'html'));
  app.get('/view.js', page('view.js', 'text/javascript'));
  app.get('/view.css', page('view.css', 'text/css'));

  app.use((req: Request) => {
    throw new HttpError(404, 'not_found', `No route for ${req.method} ${req.path}.`);
  });
  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const http = toHttpError(error);
    if (http.status === 401 || http.status === 403) metrics.authRefusals.inc({ reason: http.code });
    if (http.code === 'internal') {
      const { requestId } = res.locals as { requestId?: string };
      logger.error({ err: error, path: req.path, requestId }, 'request failed');
    }
    const fromRoute = (res.locals as { lock?: string }).lock;
    const lock = fromRoute ?? (typeof req.params.lock === 'string' ? req.params.lock : undefined);
    const body = { lock, error: http.code, message: http.message, ...http.extra };
    // Answering before the request body was read (too large, unsupported): close the
    // connection rather than read the rest just to keep it alive.
    const unread = closeIfUnread(req);
    reply(req, res, http.status, body, http.message, { ...http.headers, ...unread });
  });
  return app;
}

/** `?limit=<n>` on history: only the newest n releases. */
function readLimit(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d{1,4}$/.test(value) || Number(value) < 1)
    throw new HttpError(
      400,
      'invalid_limit',
      `Use limit=<n>, a whole number from 1 to ${maxHistoryLimit}.`,
    );
  return Math.min(Number(value), maxHistoryLimit);
}
