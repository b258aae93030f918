import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { HistoryEntry, LockPolicy, LockService, LockStore } from '@retrospective/lock';
import {
  capConnections,
  drainable,
  type DrainableServer,
  type Lifecycle,
} from '@retrospective/runtime';
import { headerAuthorizer, type Authorizer } from './auth/authorizer.js';
import { RateLimiter } from './auth/rate-limit.js';
import { CommandPipeline } from './commands/pipeline.js';
import { WaitingRoom } from './commands/waiting-room.js';
import type { Config } from './config.js';
import { clientErrorListener, connectionDropped, pipelineGate } from './http/connections.js';
import { expressApp } from './http/express-app.js';
import { fastCheck } from './http/fast-check.js';
import { fastCommands } from './http/fast-commands.js';
import { guardSocket } from './http/raw.js';
import { commandRunner } from './http/routes.js';
import type { Metrics } from './metrics.js';
import { declaredContentBytesAtMost, envPolicy } from './policy.js';
import { Broadcaster } from './ws/broadcaster.js';
import { SocketCommands } from './ws/commands.js';
import { upgradeHandler } from './ws/upgrade.js';

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
  /** Each lock's policy when locks are declared (`Lock` objects); else the environment's. */
  readonly policy?: (lock: string) => LockPolicy | undefined;
}

export interface App {
  readonly server: Server;
  readonly broadcaster: Broadcaster;
  /** Callers waiting in line (avail?wait=); stopped before the HTTP server on shutdown. */
  readonly room: WaitingRoom;
  /** Stops accepting and waits for requests in flight; see Lifecycle for the order. */
  readonly http: DrainableServer;
  /** Starts the long-lived parts (the line's upkeep, broadcasts); the server is not listening yet. */
  start(): void;
  /** Stops them: waiters are answered, WebSocket clients closed with 1001. */
  stop(): Promise<void>;
}

/**
 * Wires the api-server: one command pipeline behind the HTTP routes and the WebSocket commands,
 * the waiting room and the broadcaster. Builds without listening or starting anything.
 */
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
  const fallback = envPolicy(config);
  const policy = (lock: string) => deps.policy?.(lock) ?? fallback;
  // The most content any lock accepts: what a request may carry (each lock then checks its own).
  const contentLimit = deps.policy ? declaredContentBytesAtMost : config.MAX_CONTENT_BYTES;
  const room = new WaitingRoom({
    service,
    store,
    metrics,
    logger,
    clock,
    ttlMs: config.WAIT_QUEUE_TTL_SECONDS * 1000,
    limits: (lock) => policy(lock).waiting,
  });
  const pipeline = new CommandPipeline({
    service,
    room,
    auth,
    limits,
    metrics,
    logger,
    clock,
    policy,
  });
  const broadcaster = new Broadcaster({
    config,
    service,
    store,
    metrics,
    logger,
    clock,
    auth,
    commands: new SocketCommands({ config, pipeline }),
    history: deps.history,
  });
  const app = expressApp({ ...deps, clock, auth, pipeline, metrics, policy, contentLimit });

  const server = createServer({
    // The seed sends content in a header: leave room for it, and refuse more with 431.
    maxHeaderSize: contentLimit + 16 * 1024,
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_SECONDS * 1000,
    headersTimeout: config.HTTP_HEADERS_TIMEOUT_SECONDS * 1000,
    keepAliveTimeout: config.HTTP_KEEP_ALIVE_TIMEOUT_SECONDS * 1000,
    // How often those timeouts are checked (Node's default, 30 s, would make them late).
    connectionsCheckingInterval: 1000,
  });
  // check, the read everyone polls, skips Express in header mode (same answer, a third the cost).
  const fast =
    config.AUTH_MODE === 'header' ? fastCheck(service, store, metrics, clock) : undefined;
  // avail and release, taken and handed on many times a second, skip it in every mode.
  const commands = fastCommands(commandRunner({ config, auth, pipeline, policy }), metrics, logger);
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (!fast?.(req, res) && !commands(req, res)) app(req, res);
  };
  // Past the cap a new connection is closed at once, and still ones make room (capConnections);
  // the liveness probe goes to the metrics port, apart.
  const cap = capConnections(
    server,
    config.HTTP_MAX_CONNECTIONS,
    connectionDropped(config.HTTP_MAX_CONNECTIONS, logger, metrics),
  );
  metrics.countConnections(server);
  server.on('request', pipelineGate(handle, config.HTTP_MAX_PIPELINED, logger, metrics));
  // A proxy's unused spare connection is kept as long as an idle keep-alive one, from when it
  // opened. The listener hears of it when the shorter of the headers and request timeouts has
  // passed (Node applies the shorter one to the headers).
  const firstTimeout = Math.min(
    config.HTTP_HEADERS_TIMEOUT_SECONDS,
    config.HTTP_REQUEST_TIMEOUT_SECONDS,
  );
  const spareMs = Math.max(0, (config.HTTP_KEEP_ALIVE_TIMEOUT_SECONDS - firstTimeout) * 1000);
  const clientError = clientErrorListener(spareMs, metrics);
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    guardSocket(socket);
    clientError(error, socket);
  });
  const upgrade = upgradeHandler({ config, service, metrics, logger, auth, broadcaster });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    cap.exempt(socket); // WebSockets have limits of their own (WS_MAX_CONNECTIONS, heartbeats)
    upgrade(req, socket, head);
  });
  return {
    server,
    broadcaster,
    room,
    http: drainable(server, () => lifecycle.draining),
    start: () => {
      service.start();
      room.start();
      broadcaster.start();
    },
    stop: async () => {
      await room.stop();
      broadcaster.stop();
      service.stop();
    },
  };
}
