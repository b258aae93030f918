import { pino } from 'pino';
import {
  LeaseStore,
  LockService,
  MemoryStore,
  loadKubeConfig,
  loadOrExit,
  statusOf,
  type LockStore,
} from '@retrospective/lock';
import {
  ConfigMapHistory,
  LockController,
  MemoryHistory,
  createControllerMetrics,
  type EventRecorder,
  type HistoryStore,
} from '@retrospective/controller';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { loadConfig, type Config } from './config.js';
import { createMetrics, kubeObserver, type Metrics } from './metrics.js';

function createStore(config: Config, metrics: Metrics, kubeConfig: KubeConfig): LockStore {
  return new LeaseStore({
    kubeConfig,
    namespace: config.NAMESPACE,
    observe: kubeObserver(metrics),
    onWatchRestart: (reason) => metrics.watchRestarts.inc({ reason }),
    requestTimeoutMs: config.KUBE_REQUEST_TIMEOUT_SECONDS * 1000,
  });
}

/** With the memory store the controller's reconcile logic runs in this process. */
function inProcessController(
  config: Config,
  store: LockStore,
  service: LockService,
  metrics: Metrics,
  logger: Logger,
) {
  const history = new MemoryHistory(config.HISTORY_SIZE);
  const log = logger.child({ component: 'controller' });
  const events: EventRecorder = {
    record: async (lock, type, reason, message) => log.info({ lock, type, reason }, message),
  };
  const controller = new LockController({
    store,
    service,
    events,
    history,
    metrics: createControllerMetrics(metrics.registry),
    logger: log,
    holdTimeoutSeconds: config.HOLD_TIMEOUT_SECONDS,
    heldTooLongSeconds: config.HELD_TOO_LONG_SECONDS,
  });
  controller.start();
  controller.startLeading();
  return { controller, history };
}

function main(): void {
  const config = loadOrExit(loadConfig);
  const logger = pino({ level: config.LOG_LEVEL, base: { app: 'api-server' } });
  const metrics = createMetrics();
  const kubeConfig = config.STORE === 'kubernetes' ? loadKubeConfig() : undefined;
  const store = kubeConfig ? createStore(config, metrics, kubeConfig) : new MemoryStore();
  const service = new LockService({ store, locks: config.LOCKS });
  const inProcess = kubeConfig
    ? undefined
    : inProcessController(config, store, service, metrics, logger);
  const history: HistoryStore = kubeConfig
    ? new ConfigMapHistory(kubeConfig, config.NAMESPACE, config.HISTORY_SIZE, kubeObserver(metrics))
    : (inProcess?.history ?? new MemoryHistory(config.HISTORY_SIZE));
  const app = buildApp({
    config,
    service,
    store,
    metrics,
    logger,
    history: (lock) => history.list(lock),
  });

  app.server.listen(config.PORT, config.HOST, () => {
    logger.info(
      { port: config.PORT, store: config.STORE, locks: config.LOCKS, namespace: config.NAMESPACE },
      'listening',
    );
  });
  void store
    .start()
    .then(() => store.ensure(config.LOCKS))
    .then(() => logger.info('lock cache synced'))
    .catch((error: unknown) => {
      // In a cluster the controller creates the Leases; this Role may not allow it.
      const level = statusOf(error) === 403 ? 'info' : 'warn';
      logger[level]({ err: error }, 'could not create missing locks; the controller will');
    });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.error('shutdown deadline passed; exiting');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
    app.drain();
    app.server.close();
    app.broadcaster.close();
    app.server.closeIdleConnections();
    void Promise.resolve(inProcess?.controller.stop())
      .then(() => store.close())
      .finally(() => {
        clearTimeout(deadline);
        logger.info('stopped');
        logger.flush(() => process.exit(0));
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main();
