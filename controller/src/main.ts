import { createServer } from 'node:http';
import { pino } from 'pino';
import { LeaseStore, LockService, loadKubeConfig, loadOrExit } from '@retrospective/lock';
import { loadConfig } from './config.js';
import { LockController } from './controller.js';
import { KubeEventRecorder } from './events.js';
import { ConfigMapHistory } from './history-configmap.js';
import { LeaderElector } from './leader.js';
import { createControllerMetrics } from './metrics.js';

function main(): void {
  const config = loadOrExit(loadConfig);
  const logger = pino({
    level: config.LOG_LEVEL,
    base: { app: 'controller', identity: config.IDENTITY },
  });
  const metrics = createControllerMetrics();
  const kubeConfig = loadKubeConfig();
  const namespace = config.NAMESPACE;
  const store = new LeaseStore({ kubeConfig, namespace });
  const service = new LockService({ store, locks: config.LOCKS });
  const controller = new LockController({
    store,
    service,
    events: new KubeEventRecorder(kubeConfig, namespace, config.IDENTITY),
    history: new ConfigMapHistory(kubeConfig, namespace, config.HISTORY_SIZE),
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
    onStartedLeading: () => controller.startLeading(),
    onStoppedLeading: () => void controller.stopLeading(),
  });

  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      void metrics.registry.metrics().then((body) => {
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType }).end(body);
      });
    } else if (req.url === '/healthz') res.writeHead(200).end('ok\n');
    else if (req.url === '/readyz') {
      const ready = store.ready();
      res
        .writeHead(ready ? 200 : 503)
        .end(ready ? 'ready\n' : 'not ready: lock cache not synced\n');
    } else res.writeHead(404).end('not found\n');
  });
  server.listen(config.METRICS_PORT, config.HOST, () => {
    logger.info(
      { port: config.METRICS_PORT, namespace, locks: config.LOCKS },
      'controller started',
    );
  });

  controller.start();
  void store.start().then(() => {
    logger.info('lock cache synced; campaigning for leadership');
    elector.run();
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => process.exit(1), config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
    server.close();
    void elector
      .stop()
      .then(() => controller.stop())
      .then(() => store.close())
      .finally(() => {
        clearTimeout(deadline);
        logger.flush(() => process.exit(0));
      });
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main();
