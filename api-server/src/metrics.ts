import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Server } from 'node:http';
import { createKubeMetrics, removeLockSeries } from '@retrospective/runtime';

const prefix = 'retrospective_';

export interface MetricsOptions {
  /** The configured locks: their race counters start at 0, so "no race yet" reads as 0. */
  readonly locks: readonly string[];
  /** Whether the lock watch is connected (the store is built after its metrics). */
  readonly watching?: () => boolean;
}

/** The command outcomes whose series start at 0 for every lock (what the dashboard reads). */
const followedOutcomes = [
  ['avail', 'granted'],
  ['avail', 'renewed'],
  ['change', 'updated'],
  ['release', 'released'],
  ['release', 'forced'],
] as const;

/** Every api-server metric, on a registry of its own so tests can build many apps. */
export function createMetrics({ locks, watching = () => true }: MetricsOptions) {
  const registry = new Registry();
  /** The API port's server, once there is one (countConnections). */
  let server: Pick<Server, 'getConnections'> | undefined;
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const metrics = {
    registry,
    ...createKubeMetrics(registry, watching),
    lockRequests: new Counter({
      name: `${prefix}lock_requests_total`,
      help: 'Lock commands answered, by lock, action and outcome.',
      labelNames: ['lock', 'action', 'outcome'] as const,
      registers,
    }),
    lockRaces: new Counter({
      name: `${prefix}lock_races_total`,
      help: 'Commands that lost a compare-and-swap race and were then refused.',
      labelNames: ['lock', 'action'] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: `${prefix}http_request_duration_seconds`,
      help: 'HTTP request latency by route template, method and status code.',
      labelNames: ['route', 'method', 'code'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    wsConnections: new Gauge({
      name: `${prefix}websocket_connections`,
      help: 'Open WebSocket connections.',
      registers,
    }),
    wsMessages: new Counter({
      name: `${prefix}websocket_messages_total`,
      help: 'WebSocket frames sent, by message type.',
      labelNames: ['type'] as const,
      registers,
    }),
    wsDropped: new Counter({
      name: `${prefix}websocket_dropped_total`,
      help: 'WebSocket clients disconnected by the server, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    httpConnections: new Gauge({
      name: `${prefix}http_connections`,
      help: 'Connections open on the API port, WebSockets and waiters in line included (at HTTP_MAX_CONNECTIONS new ones are closed).',
      registers,
      async collect() {
        const open = await new Promise<number>((resolve) =>
          server ? server.getConnections((error, n) => resolve(error ? 0 : n)) : resolve(0),
        );
        this.set(open);
      },
    }),
    httpMaxConnections: new Gauge({
      name: `${prefix}http_max_connections`,
      help: 'HTTP_MAX_CONNECTIONS: the connections the API port holds open at most.',
      registers,
    }),
    httpDropped: new Counter({
      name: `${prefix}http_connections_dropped_total`,
      help: 'HTTP connections the server closed, by reason: pipelining (too many unanswered requests), request_timeout (408), headers_too_large (431), malformed (400), never_used (opened, no request sent for the keep-alive timeout), connection_limit (over HTTP_MAX_CONNECTIONS, closed as it arrived).',
      labelNames: ['reason'] as const,
      registers,
    }),
    queueLength: new Gauge({
      name: `${prefix}lock_queue_length`,
      help: 'Callers waiting in line for a lock (avail?wait=), across all replicas.',
      labelNames: ['lock'] as const,
      registers,
    }),
    waitDuration: new Histogram({
      name: `${prefix}lock_wait_duration_seconds`,
      help: "How long this replica's callers waited in line, by outcome (granted, timeout, abandoned).",
      labelNames: ['lock', 'outcome'] as const,
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    handoverGap: new Histogram({
      name: `${prefix}lock_handover_gap_seconds`,
      help: 'Time from a release to the grant to the next waiter in line (taken by this replica).',
      labelNames: ['lock'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 15],
      registers,
    }),
    rateLimited: new Counter({
      name: `${prefix}rate_limited_total`,
      help: 'Mutations refused with 429 because a user or a client address was over its limit.',
      labelNames: ['scope'] as const,
      registers,
    }),
    authRefusals: new Counter({
      name: `${prefix}auth_refusals_total`,
      help: 'Requests refused by authentication (401) or authorization (403), by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    broadcastDelay: new Histogram({
      name: `${prefix}broadcast_delay_seconds`,
      help: 'Time from a lock change being seen to its frames being written to every client.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
  };
  /** Starts a lock's series at 0, so "no race yet" and a first wait read as data. */
  const follow = (lock: string) => {
    for (const action of ['avail', 'change', 'release']) metrics.lockRaces.inc({ lock, action }, 0);
    // The outcomes the dashboard's annotations and panels read: a pod's first grant or release
    // is then an increase from 0 that increase() sees, not a series that starts at 1.
    for (const [action, outcome] of followedOutcomes)
      metrics.lockRequests.inc({ lock, action, outcome }, 0);
    metrics.queueLength.set({ lock }, 0);
    // Zeroed, so the first wait reads as an increase (rate() and the dashboard see it).
    metrics.handoverGap.zero({ lock });
    for (const outcome of ['granted', 'timeout', 'abandoned'])
      metrics.waitDuration.zero({ lock, outcome });
  };
  /** Removes every series of a lock that is gone (a deleted `Lock`). */
  const forget = (lock: string) => {
    for (const metric of [
      metrics.lockRequests,
      metrics.lockRaces,
      metrics.queueLength,
      metrics.waitDuration,
      metrics.handoverGap,
    ])
      removeLockSeries(metric, lock);
  };
  for (const lock of locks) follow(lock);
  for (const reason of ['slow_consumer', 'client_message', 'heartbeat', 'unauthorized'])
    metrics.wsDropped.inc({ reason }, 0);
  for (const reason of [
    'pipelining',
    'request_timeout',
    'headers_too_large',
    'malformed',
    'never_used',
    'connection_limit',
  ] as const)
    metrics.httpDropped.inc({ reason }, 0);
  for (const scope of ['user', 'address']) metrics.rateLimited.inc({ scope }, 0);
  for (const reason of ['unauthenticated', 'forbidden', 'forbidden_origin'])
    metrics.authRefusals.inc({ reason }, 0);
  /** Reports `api`'s open connections, and its cap, from now on. */
  const countConnections = (api: Server) => {
    server = api;
    metrics.httpMaxConnections.set(api.maxConnections);
  };
  return { ...metrics, follow, forget, countConnections };
}

export type Metrics = ReturnType<typeof createMetrics>;
