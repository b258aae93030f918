import { LockService } from '@retrospective/lock';
import {
  ConfigMapHistory,
  LeaderElector,
  LeaseStore,
  Lifecycle,
  createAdminServer,
  createKubeMetrics,
  createLogger,
  kubeObserver,
  listen,
  loadKubeConfig,
  loadOrExit,
  stopServer,
} from '@retrospective/runtime';
import { loadConfig } from './config.js';
import { LockController } from './controller.js';
import { KubeEventRecorder } from './events.js';
import { createControllerMetrics } from './metrics.js';

function main(): void {
  const config = loadOrExit(() => loadConfig());
  const kubeConfig = loadOrExit(() => loadKubeConfig(config.KUBECONFIG));
  const logger = createLogger('controller', config.LOG_LEVEL, { identity: config.IDENTITY });
  const lifecycle = new Lifecycle({
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_SECONDS * 1000,
    drainDelayMs: config.DRAIN_DELAY_SECONDS * 1000,
  }).install();
  const { NAMESPACE: namespace, LOCKS: locks } = config;
  const metrics = createControllerMetrics({
    locks,
    heldTooLongSeconds: config.HELD_TOO_LONG_SECONDS,
  });
  const kube = createKubeMetrics(metrics.registry, () => store.watching());
  const observe = kubeObserver(kube);
  const store = new LeaseStore({
    kubeConfig,
    namespace,
    locks,
    observe,
    onWatchRestart: (reason) => kube.watchRestarts.inc({ reason }),
    requestTimeoutMs: config.KUBE_REQUEST_TIMEOUT_SECONDS * 1000,
  });
  const service = new LockService({ store, locks });
  const controller = new LockController({
    store,
    service,
    events: new KubeEventRecorder(kubeConfig, namespace, config.IDENTITY, observe),
    history: new ConfigMapHistory({ kubeConfig, namespace, limit: config.HISTORY_SIZE, observe }),
    metrics,
    logger,
    holdTimeoutSeconds: config.HOLD_TIMEOUT_SECONDS,
    heldTooLongSeconds: config.HELD_TOO_LONG_SECONDS,
  });
  const elector = new LeaderElector({
    kubeConfig,
    namespace,
    name: config.LEADER_ELECTION_ID,
    identity: config.IDENTITY,
    leaseDurationMs: config.LEADER_ELECTION_LEASE_DURATION_SECONDS * 1000,
    renewDeadlineMs: config.LEADER_ELECTION_RENEW_DEADLINE_SECONDS * 1000,
    retryPeriodMs: config.LEADER_ELECTION_RETRY_PERIOD_SECONDS * 1000,
    observe,
  });
  const admin = createAdminServer({ registry: metrics.registry, lifecycle, logger });

  lifecycle
    .readiness('lock cache not synced', () => store.ready())
    .onShutdown('leader election', () => elector.stop())
    .onShutdown('controller', () => controller.stop())
    .onShutdown('lock watch', () => store.close())
    .onShutdown('admin server', () => stopServer(admin));

  listen(admin, config.METRICS_PORT, config.HOST)
    .then(() => logger.info({ port: config.METRICS_PORT, namespace, locks }, 'controller started'))
    .catch((error: unknown) => {
      logger.fatal({ err: error, port: config.METRICS_PORT }, 'cannot listen');
      void lifecycle.shutdown('listen failed', 1);
    });
  controller.start();
  void store.start().then(() => {
    if (lifecycle.draining) return;
    logger.info('lock cache synced; campaigning for leadership');
    elector.run((signal) => controller.lead(signal));
  });
}

main();
