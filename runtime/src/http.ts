import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Lifecycle } from './lifecycle.js';
import { SampledLog } from './sampled-log.js';

export interface DrainableServer {
  /** Requests that arrived and have not finished. */
  readonly inFlight: number;
  /** Stops accepting, waits for in-flight requests (until `deadline`), then closes what is left. */
  close(deadline: AbortSignal): Promise<void>;
}

/**
 * Counts `server`'s requests in flight and, once `draining()` is true, answers with
 * `Connection: close` so keep-alive clients reconnect to another replica.
 */
export function drainable(server: Server, draining: () => boolean): DrainableServer {
  let inFlight = 0;
  const idle = new Set<() => void>();
  // Prepended: runs before the app, which may answer synchronously.
  server.prependListener('request', (_req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    if (draining()) res.setHeader('Connection', 'close');
    res.once('close', () => {
      inFlight--;
      if (inFlight === 0) for (const resolve of idle) resolve();
    });
  });
  return {
    get inFlight() {
      return inFlight;
    },
    async close(deadline) {
      const closed = new Promise((resolve) => server.close(resolve));
      server.closeIdleConnections();
      if (inFlight > 0 && !deadline.aborted) {
        await new Promise<void>((resolve) => {
          idle.add(resolve);
          deadline.addEventListener('abort', () => resolve(), { once: true });
        }).finally(() => idle.clear());
      }
      server.closeAllConnections();
      if (server.listening) await closed;
    },
  };
}

/** The answer to a readiness probe. */
export function readinessAnswer(lifecycle: Lifecycle): { status: number; body: string } {
  const { ready, reason } = lifecycle.ready();
  return ready ? { status: 200, body: 'ready\n' } : { status: 503, body: `not ready: ${reason}\n` };
}

export interface AdminServerDeps {
  readonly registry: Registry;
  readonly lifecycle: Lifecycle;
  readonly logger: Logger;
}

/**
 * The port for Prometheus and the kubelet: /metrics, /healthz and /readyz. It is never routed by
 * an Ingress, so metrics stay inside the cluster.
 */
export function createAdminServer({ registry, lifecycle, logger }: AdminServerDeps): Server {
  // Bounded as the API port is (any pod may reach this one unless a NetworkPolicy says not):
  // Node's defaults would give a request 60 s for its headers and 300 s in all.
  const server = createServer({
    headersTimeout: 10_000,
    requestTimeout: 30_000,
    connectionsCheckingInterval: 1000,
  });
  const dropped = new SampledLog(logger);
  capConnections(server, adminMaxConnections, (data) =>
    dropped.warn('metrics port: closing new connections over its limit', {
      max: adminMaxConnections,
      remote: data?.remoteAddress,
    }),
  );
  return server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') =>
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(body);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(405, 'method not allowed\n');
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (body) => send(200, body, registry.contentType),
        (error: unknown) => {
          logger.error({ err: error }, 'collecting metrics failed');
          send(500, 'collecting metrics failed\n');
        },
      );
    } else if (path === '/healthz') send(200, 'ok\n');
    else if (path === '/readyz') {
      const { status, body } = readinessAnswer(lifecycle);
      send(status, body);
    } else send(404, 'not found: try /metrics, /healthz or /readyz\n');
  });
}

/**
 * Holds at most `max` connections open on `server`: Node closes one over it as it arrives, before
 * reading a byte, and `onDrop` hears of it. Each time (at most once a second) the connections
 * with no request in progress are closed too, idle keep-alive ones and ones that never sent a
 * byte: a flood of idle connections then cannot keep everyone else out for the keep-alive timeout
 * (their clients open a new one when they next need it; WebSockets and requests being answered,
 * waiters in line among them, are kept).
 */
export function capConnections(
  server: Server,
  max: number,
  onDrop: (data?: { remoteAddress?: string }) => void,
  now = () => performance.now(),
): void {
  server.maxConnections = max;
  // Node's closeIdleConnections() leaves out connections that never sent a byte (they wait for
  // their headers timeout), so those are kept here until they send one or close.
  const unused = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    unused.add(socket);
    socket.once('close', () => unused.delete(socket));
  });
  let cleared = -Infinity;
  server.on('drop', (data?: { remoteAddress?: string }) => {
    onDrop(data);
    if (now() - cleared < 1000) return;
    cleared = now();
    for (const socket of unused) {
      unused.delete(socket);
      if (socket.bytesRead === 0) socket.destroy();
    }
    server.closeIdleConnections();
  });
}

/** Connections the metrics port holds at most: Prometheus and the kubelet need a few. */
const adminMaxConnections = 200;

/**
 * Listens on `port` and resolves once listening (rejects when the port is taken). With a logger,
 * an error of the listening socket afterwards (an accept that failed: out of file descriptors,
 * say) is logged, once a minute at most, rather than ending the process; the server keeps
 * accepting.
 */
export function listen(
  server: Server,
  port: number,
  host: string,
  logger?: Pick<Logger, 'warn'>,
): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      if (logger) {
        const failures = new SampledLog(logger);
        server.on('error', (error: NodeJS.ErrnoException) =>
          failures.warn('accepting a connection failed', { port, code: error.code }),
        );
      }
      resolve();
    });
  });
}

/** Closes `server` and every connection it has, without waiting for anything. */
export function stopServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return server.listening ? closed : Promise.resolve();
}
