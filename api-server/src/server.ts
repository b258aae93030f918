import type { Server } from 'node:http';
import type { LockService, LockStore } from '@retrospective/lock';
import {
  createAdminServer,
  listen,
  stopServer,
  type Lifecycle,
  type ShutdownStep,
} from '@retrospective/runtime';
import type { Logger } from 'pino';
import { buildApp, type App, type AppDeps } from './app.js';
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';

export interface ApiServerDeps {
  readonly config: Config;
  readonly store: LockStore;
  readonly service: LockService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly lifecycle: Lifecycle;
  readonly history?: AppDeps['history'];
  readonly auth?: AppDeps['auth'];
  readonly policy?: AppDeps['policy'];
  /** Run after the HTTP and WebSocket steps, before the lock watch stops (e.g. an in-process controller). */
  readonly stopAlso?: readonly { readonly name: string; readonly run: ShutdownStep }[];
  /** Besides the lock cache: what else must be synced before serving (the `Lock` watch). */
  readonly ready?: () => boolean;
}

export interface ApiServer {
  readonly app: App;
  readonly admin: Server;
  /** Resolves once both ports listen; rejects when one is taken. */
  readonly listening: Promise<void>;
}

/**
 * The api-server's parts on the lifecycle: the API port, the admin port (metrics and probes), and
 * the shutdown order: stop accepting and finish requests in flight, close WebSockets with 1001,
 * stop what else runs in the process, stop the lock watch, close the admin port last.
 */
export function startApiServer(deps: ApiServerDeps): ApiServer {
  const { config, store, metrics, logger, lifecycle } = deps;
  const app = buildApp(deps);
  app.start();
  const admin = createAdminServer({ registry: metrics.registry, lifecycle, logger });
  lifecycle
    .readiness('lock cache not synced', () => store.ready() && (deps.ready?.() ?? true))
    // Waiting callers are answered Wait first, or the HTTP step would wait for their timeouts.
    .onShutdown('waiters', () => app.room.stop())
    .onShutdown('http', (deadline) => app.http.close(deadline))
    .onShutdown('websockets', () => app.broadcaster.stop());
  for (const step of deps.stopAlso ?? []) lifecycle.onShutdown(step.name, step.run);
  lifecycle
    .onShutdown('lock watch', () => store.close())
    .onShutdown('admin server', () => stopServer(admin));
  const listening = Promise.all([
    listen(app.server, config.PORT, config.HOST, logger),
    listen(admin, config.METRICS_PORT, config.HOST, logger),
  ]).then(() => {
    logger.info(
      {
        port: config.PORT,
        metricsPort: config.METRICS_PORT,
        store: config.STORE,
        locks: config.LOCKS,
      },
      'listening',
    );
  });
  listening.catch((error: unknown) => {
    logger.fatal({ err: error }, 'cannot listen');
    void lifecycle.shutdown('listen failed', 1);
  });
  return { app, admin, listening };
}
