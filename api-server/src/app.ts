import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import type { HistoryEntry, LockService, LockStore } from '@retrospective/lock';
import {
  drainable,
  readinessAnswer,
  type DrainableServer,
  type Lifecycle,
} from '@retrospective/runtime';
import { headerAuthorizer, type Authorizer, type Permission } from './auth.js';
import type { Config } from './config.js';
import { HttpError, toHttpError } from './errors.js';
import { fastCheck } from './fast-check.js';
import type { Metrics } from './metrics.js';
import { openapi } from './openapi.js';
import { RateLimiter } from './rate-limit.js';
import { reply, requestIdOf } from './respond.js';
import { lockRoutes } from './routes.js';
import { WaitingRoom } from './waiting.js';
import { SocketCommands } from './ws-commands.js';
import { Broadcaster } from './ws.js';

export interface AppDeps {
  readonly config: Config;
  readonly service: LockService;
  readonly store: LockStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Readiness and draining: /readyz answers from it, and draining closes keep-alive connections. */
  readonly lifecycle: Lifecycle;
  readonly clock?: () => Date;
  /** Serves /locks/<name>/history when given (the controller keeps the history). */
  readonly history?: (lock: string) => readonly HistoryEntry[] | Promise<readonly HistoryEntry[]>;
  /** Who may do what; AUTH_MODE=header builds its own, kubernetes mode needs one passed in. */
  readonly auth?: Authorizer;
}

export interface App {
  readonly server: Server;
  readonly broadcaster: Broadcaster;
  /** Callers waiting in line (avail?wait=); closed before the HTTP server on shutdown. */
  readonly room: WaitingRoom;
  /** Stops accepting and waits for requests in flight; see Lifecycle for the order. */
  readonly http: DrainableServer;
}

const publicDir = resolve(import.meta.dirname, '../public');
const csp =
  "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'";

/**
 * Hands requests to `app`, but closes a connection with more than `max` requests waiting for
 * their answers: a client that pipelines requests and never reads the replies would otherwise
 * make the server build and hold every reply.
 */
function pipelineGate(
  app: (req: IncomingMessage, res: ServerResponse) => void,
  max: number,
  logger: Logger,
  metrics: Metrics,
) {
  const waiting = new WeakMap<Socket, number>();
  return (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const count = (waiting.get(socket) ?? 0) + 1;
    waiting.set(socket, count);
    res.once('close', () => waiting.set(socket, (waiting.get(socket) ?? 1) - 1));
    if (count <= max) return app(req, res);
    if (!socket.destroyed) {
      metrics.httpDropped.inc({ reason: 'pipelining' });
      logger.warn(
        { remote: socket.remoteAddress, waiting: count },
        'closing a connection that pipelines without reading',
      );
      socket.destroy();
    }
  };
}

/** Builds the HTTP server, routes and WebSocket endpoint without listening. */
export function buildApp(deps: AppDeps): App {
  const { config, service, store, metrics, logger, lifecycle } = deps;
  const clock = deps.clock ?? (() => new Date());
  const auth = deps.auth ?? headerAuthorizer(config);
  if (auth.mode !== config.AUTH_MODE)
    throw new Error(`AUTH_MODE=${config.AUTH_MODE} but the authorizer is for ${auth.mode}`);
  const limits = {
    user: new RateLimiter(config.RATE_LIMIT_USER_PER_MINUTE),
    address: new RateLimiter(config.RATE_LIMIT_ADDRESS_PER_MINUTE),
  };
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
    res.set({
      'X-Request-Id': id,
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-store',
    });
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

  const room = new WaitingRoom({
    service,
    store,
    metrics,
    logger,
    clock,
    ttlMs: config.WAIT_QUEUE_TTL_SECONDS * 1000,
    maxWaiters: config.WAIT_QUEUE_MAX,
  });
  app.use(lockRoutes({ config, service, metrics, logger, clock, auth, limits, room }));
  app.get('/locks/:lock/history', async (req, res) => {
    const { lock } = req.params;
    const who = await auth.identify(req, 'view');
    service.state(lock); // 404 for unknown locks, 503 when not provisioned
    await auth.authorize(who, 'view', lock);
    const releases = deps.history ? await deps.history(lock) : [];
    reply(req, res, 200, { lock, releases }, JSON.stringify(releases, null, 2));
  });
  // Who the caller is and what they may do to each lock: the view shows its buttons from this.
  app.get('/api/me', async (req, res) => {
    const who = await auth.identify(req, 'view');
    const permissions: Permission[] = ['view', 'hold', 'force-release'];
    const locks = Object.fromEntries(
      await Promise.all(
        service.locks.map(
          async (lock) =>
            [
              lock,
              Object.fromEntries(
                await Promise.all(
                  permissions.map(async (p) => [p, await auth.allowed(who, p, lock)] as const),
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
    const unread: Record<string, string> = req.complete ? {} : { Connection: 'close' };
    reply(req, res, http.status, body, http.message, { ...http.headers, ...unread });
  });

  const server = createServer({
    // The seed sends content in a header: leave room for it, and refuse more with 431.
    maxHeaderSize: config.MAX_CONTENT_BYTES + 16 * 1024,
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_SECONDS * 1000,
    headersTimeout: config.HTTP_HEADERS_TIMEOUT_SECONDS * 1000,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_SECONDS * 1000,
    // How often those timeouts are checked (Node's default, 30 s, would make them late).
    connectionsCheckingInterval: 1000,
  });
  // check, the read everyone polls, skips Express in header mode (same answer, a third the cost).
  const fast =
    config.AUTH_MODE === 'header' ? fastCheck(service, store, metrics, clock) : undefined;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (!fast?.(req, res)) app(req, res);
  };
  server.on('request', pipelineGate(handle, config.HTTP_MAX_PIPELINED, logger, metrics));
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (!socket.writable) return socket.destroy();
    const [status, message] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? ['431 Request Header Fields Too Large', 'The request headers are too large.']
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? ['408 Request Timeout', 'The request did not arrive in time.']
          : [
              '400 Bad Request',
              'Malformed HTTP request (control characters or a bare CR/LF in a header?).',
            ];
    socket.end(
      `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${message}\n`,
    );
  });
  const broadcaster = new Broadcaster({
    config,
    service,
    store,
    metrics,
    logger,
    clock,
    auth,
    commands: new SocketCommands({
      config,
      service,
      room,
      auth,
      userLimit: limits.user,
      metrics,
    }),
    history: deps.history,
  });
  server.on('upgrade', (req, socket, head) => broadcaster.handleUpgrade(req, socket, head));
  return { server, broadcaster, room, http: drainable(server, () => lifecycle.draining) };
}
