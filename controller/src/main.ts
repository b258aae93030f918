import { LockService } from '@retrospective/lock';
import {
  ConfigMapHistory,
  lockCatalogFor,
  lockApiVersion,
  lockKind,
  LeaderElector,
  createAdminServer,
  createKubeMetrics,
  kubeObserver,
  leaseStoreFor,
  listen,
  loadKubeConfig,
  loadOrExit,
  startProcess,
  stopServer,
} from '@retrospective/runtime';
import { loadConfig } from './config.js';
import { LockController } from './controller.js';
import { KubeEventRecorder, leaseOf } from './events.js';
import { KubeStatusWriter } from './lock-status.js';
import { createControllerMetrics } from './metrics.js';

function main(): void {
  const config = loadOrExit(() => loadConfig());
  const kubeConfig = loadOrExit(() => loadKubeConfig(config.KUBECONFIG));
  const { logger, lifecycle } = startProcess('controller', config, { identity: config.IDENTITY });
  const { NAMESPACE: namespace, LOCKS: locks } = config;
  const metrics = createControllerMetrics({
    // Declared locks come and go; their counters start when they first count something.
    locks: config.LOCK_SOURCE === 'resources' ? [] : locks,
    heldTooLongSeconds: config.HELD_TOO_LONG_SECONDS,
  });
  const kube = createKubeMetrics(metrics.registry, () => store.watching());
  const observe = kubeObserver(kube);
  const declared = lockCatalogFor(kubeConfig, config, observe, logger);
  const store = leaseStoreFor(
    kubeConfig,
    { ...config, LOCKS: declared ? 'labelled' : locks },
    kube,
  );
  const defaults = {
    holdTimeoutSeconds: config.HOLD_TIMEOUT_SECONDS,
    heldTooLongSeconds: config.HELD_TOO_LONG_SECONDS,
  };
  const service = new LockService({ store, locks: declared ?? locks });
  const controller = new LockController({
    store,
    service,
    events: new KubeEventRecorder(kubeConfig, namespace, config.IDENTITY, observe, (lock) => {
      const uid = declared?.object(lock)?.metadata.uid;
      return uid ? { apiVersion: lockApiVersion, kind: lockKind, name: lock, uid } : leaseOf(lock);
    }),
    history: new ConfigMapHistory({ kubeConfig, namespace, limit: config.HISTORY_SIZE, observe }),
    metrics,
    logger,
    // Listed locks follow the environment; declared ones their own spec.
    policy: (lock) => declared?.policy(lock) ?? defaults,
    declared: declared && {
      object: (name) => declared.object(name),
      status: new KubeStatusWriter(kubeConfig, namespace, observe),
    },
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
    .readiness('lock cache not synced', () => store.ready() && (declared?.ready() ?? true))
    .onShutdown('leader election', () => elector.stop())
    .onShutdown('controller', () => controller.stop())
    .onShutdown('lock watch', () => store.close())
    .onShutdown('Lock watch', () => declared?.close())
    .onShutdown('admin server', () => stopServer(admin));

  listen(admin, config.METRICS_PORT, config.HOST, logger)
    .then(() => logger.info({ port: config.METRICS_PORT, namespace, locks }, 'controller started'))
    .catch((error: unknown) => {
      logger.fatal({ err: error, port: config.METRICS_PORT }, 'cannot listen');
      void lifecycle.shutdown('listen failed', 1);
    });
  // The service times waiters' renewals as the watch brings them: an expiry hands the lock to the
  // head of the line only if that waiter still counts.
  service.start();
  controller.start();
  void Promise.all([store.start(), declared?.start()]).then(() => {
    if (lifecycle.draining) return;
    logger.info('lock cache synced; campaigning for leadership');
    elector.run((signal) => controller.lead(signal));
  });
}

main();
