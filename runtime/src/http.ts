import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Lifecycle } from './lifecycle.js';

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
  return createServer((req, res) => {
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

/** Listens on `port` and resolves once listening (rejects when the port is taken). */
export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
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
