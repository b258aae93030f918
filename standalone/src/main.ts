import { ConfigError, createMetrics, loadConfig, startApiServer } from '@retrospective/api-server';
import {
  LockController,
  LogEventRecorder,
  createControllerMetrics,
} from '@retrospective/controller';
import { LockService, MemoryHistory, MemoryStore } from '@retrospective/lock';
import { loadOrExit, startProcess } from '@retrospective/runtime';

/**
 * The whole service in one process over the in-memory lock: the api-server with the
 * controller's reconcile logic (expiry, history, lock metrics) leading from the start.
 * Configured like the api-server; STORE is ignored (always memory).
 */
function main(): void {
  const config = loadOrExit(() => {
    const loaded = loadConfig();
    if (loaded.AUTH_MODE !== 'header')
      throw new ConfigError([
        'AUTH_MODE: the standalone process has no Kubernetes API to review tokens; use header (or the api-server)',
      ]);
    return loaded;
  });
  const { logger, lifecycle } = startProcess('retrospective', config);
  const metrics = createMetrics({ locks: config.LOCKS });
  const store = new MemoryStore();
  const service = new LockService({ store, locks: config.LOCKS });
  const history = new MemoryHistory(config.HISTORY_SIZE);
  const log = logger.child({ component: 'controller' });
  const controller = new LockController({
    store,
    service,
    events: new LogEventRecorder(log),
    history,
    metrics: createControllerMetrics({
      locks: config.LOCKS,
      heldTooLongSeconds: config.HELD_TOO_LONG_SECONDS,
      registry: metrics.registry,
    }),
    logger: log,
    policy: () => ({
      holdTimeoutSeconds: config.HOLD_TIMEOUT_SECONDS,
      heldTooLongSeconds: config.HELD_TOO_LONG_SECONDS,
    }),
  });
  const term = new AbortController();
  let leading: Promise<void> = Promise.resolve();
  startApiServer({
    config: { ...config, STORE: 'memory' },
    store,
    service,
    metrics,
    logger,
    lifecycle,
    history: (lock) => history.list(lock),
    stopAlso: [
      {
        name: 'controller',
        run: async () => {
          term.abort();
          await leading;
          await controller.stop();
        },
      },
    ],
  });
  controller.start();
  void store
    .start()
    .then(() => store.ensure(config.LOCKS))
    .then(() => {
      leading = controller.lead(term.signal);
    });
}

main();
