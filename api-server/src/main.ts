import { FixedCatalog, LockService, MemoryStore, type LockStore } from '@retrospective/lock';
import {
  lockCatalogFor,
  WatchedHistory,
  kubeObserver,
  leaseStoreFor,
  loadKubeConfig,
  loadOrExit,
  startProcess,
  statusOf,
} from '@retrospective/runtime';
import { kubernetesAuthorizer } from './auth/authorizer.js';
import { loadConfig } from './config.js';
import { kubeReviewer, leaseResource, lockResource } from './auth/kube-reviewer.js';
import { createMetrics } from './metrics.js';
import { envPolicy } from './policy.js';
import { startApiServer } from './server.js';

function main(): void {
  const config = loadOrExit(() => loadConfig());
  const needsApi = config.STORE === 'kubernetes' || config.AUTH_MODE === 'kubernetes';
  const apiConfig = needsApi ? loadOrExit(() => loadKubeConfig(config.KUBECONFIG)) : undefined;
  const kubeConfig = config.STORE === 'kubernetes' ? apiConfig : undefined;
  const { logger, lifecycle } = startProcess('api-server', config);
  if (config.AUTH_MODE === 'header')
    logger.warn(
      { header: config.USERNAME_HEADER },
      'AUTH_MODE=header: the user name header is trusted as sent; it must be set by an authenticating proxy, and nothing else may reach this port',
    );
  const { NAMESPACE: namespace, LOCKS: locks } = config;
  const declared = kubeConfig && config.LOCK_SOURCE === 'resources';
  const metrics = createMetrics({
    locks: declared ? [] : locks,
    watching: () => store.watching() && (catalog?.watching() ?? true),
  });
  const observe = kubeObserver(metrics);
  const catalog = declared ? lockCatalogFor(kubeConfig, config, observe, logger) : undefined;
  // A lock's series appear with its Lock (not again on a change of its spec) and go with it.
  const followed = new Set<string>();
  catalog?.subscribe(({ name, policy }) => {
    if (policy && !followed.has(name)) metrics.follow(name);
    if (!policy) metrics.forget(name);
    if (policy) followed.add(name);
    else followed.delete(name);
  });
  const store: LockStore = kubeConfig
    ? leaseStoreFor(kubeConfig, { ...config, LOCKS: catalog ? 'labelled' : locks }, metrics)
    : new MemoryStore();
  const history = kubeConfig
    ? new WatchedHistory({
        kubeConfig,
        namespace,
        locks: catalog ? 'labelled' : locks,
        observe,
        watchTimeoutSeconds: config.KUBE_WATCH_TIMEOUT_SECONDS,
      })
    : undefined;
  if (!kubeConfig)
    logger.warn(
      'STORE=memory in the api-server alone: no controller, so holds never expire and no history is kept (standalone/dist/main.js runs both in one process)',
    );
  const service = new LockService({
    store,
    locks: catalog ?? new FixedCatalog(locks, envPolicy(config)),
  });
  const auth =
    apiConfig && config.AUTH_MODE === 'kubernetes'
      ? kubernetesAuthorizer(
          config,
          kubeReviewer(
            apiConfig,
            namespace,
            observe,
            config.AUTH_TOKEN_AUDIENCES,
            catalog ? lockResource : leaseResource,
          ),
          logger,
        )
      : undefined;
  startApiServer({
    config,
    store,
    service,
    metrics,
    logger,
    lifecycle,
    ...(auth ? { auth } : {}),
    ...(history ? { history: (lock: string) => history.list(lock) } : {}),
    stopAlso: [
      ...(history ? [{ name: 'history watch', run: () => history.stop() }] : []),
      ...(catalog ? [{ name: 'Lock watch', run: () => catalog.close() }] : []),
    ],
    // Ready once the Locks and the recorded histories were read too: a replica that serves before
    // would answer /history 503 and replay resuming WebSocket clients without them.
    ready: () => (catalog?.ready() ?? true) && (history?.synced() ?? true),
    ...(catalog ? { policy: (lock: string) => catalog.policy(lock) } : {}),
  });
  void Promise.all([store.start(), catalog?.start(), history?.start()])
    // Declared locks get their Leases from the controller, owned by their Lock.
    .then(() =>
      catalog
        ? undefined
        : store.ensure(locks, { tokenFloor: async (lock) => history?.floor(lock) ?? 0 }),
    )
    .then(() => logger.info('lock cache synced'))
    .catch((error: unknown) => {
      // In a cluster the controller creates the Leases; this Role does not allow it.
      const level = statusOf(error) === 403 ? 'info' : 'warn';
      logger[level]({ err: error }, 'could not create missing locks; the controller will');
    });
}

main();
