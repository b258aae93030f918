import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { KubeObserver } from './client.js';

const prefix = 'retrospective_';

/** How a process talks to the Kubernetes API: calls, their latency, and its lock watch. */
export function createKubeMetrics(registry: Registry, watching: () => boolean = () => false) {
  const registers = [registry];
  const metrics = {
    kubeRequests: new Counter({
      name: `${prefix}kube_requests_total`,
      help: 'Kubernetes API calls, by verb and status code (error when there was no answer).',
      labelNames: ['verb', 'code'] as const,
      registers,
    }),
    kubeDuration: new Histogram({
      name: `${prefix}kube_request_duration_seconds`,
      help: 'Kubernetes API call latency, by verb.',
      labelNames: ['verb'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    watchRestarts: new Counter({
      name: `${prefix}watch_restarts_total`,
      help: 'Lease watch restarts after an error or 410 Gone, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    watchConnected: new Gauge({
      name: `${prefix}watch_connected`,
      help: '1 while the lock watch is connected and its cache current, else 0.',
      registers,
      collect() {
        this.set(watching() ? 1 : 0);
      },
    }),
  };
  for (const reason of ['error', 'gone']) metrics.watchRestarts.inc({ reason }, 0);
  return metrics;
}

export type KubeMetrics = ReturnType<typeof createKubeMetrics>;

/** Feeds kube_requests_total and kube_request_duration_seconds from a store's observer hook. */
export const kubeObserver =
  (metrics: KubeMetrics): KubeObserver =>
  (verb, code, seconds) => {
    metrics.kubeRequests.inc({ verb, code });
    metrics.kubeDuration.observe({ verb }, seconds);
  };

/**
 * Removes every series of `metric` whose `lock` label is `lock` (a deleted `Lock`). prom-client
 * (15.1) removes series only by their full label set and lists them only asynchronously, so this
 * reads the map it keeps them in.
 */
export function removeLockSeries(metric: { remove(labels: never): void }, lock: string): void {
  const map = (metric as { hashMap?: Record<string, { labels?: Record<string, string | number> }> })
    .hashMap;
  for (const entry of Object.values(map ?? {}))
    if (entry.labels?.lock === lock) metric.remove(entry.labels as never);
}
