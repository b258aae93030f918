import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
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
    headersTimeout: 5000,
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

/** How long a connection must have sent nothing new, and not be answered, to be closed at the cap. */
export const stillForMs = 2000;

/**
 * Holds at most `max` connections open on `server`: Node closes one over it as it arrives, before
 * reading a byte, and `onDrop` hears of it. Each time (at most once a second) the connections that
 * are still are closed too, to make room: no byte read from them for `stillForMs`, no answer in
 * progress or still being sent, not a WebSocket. Those are connections that never sent a byte,
 * idle keep-alive ones, and ones stuck in the middle of a request's headers. A flood of such
 * connections then holds the cap for seconds, not for the keep-alive or headers timeout (their
 * clients open a new one when they next need it). Kept: requests being answered (waiters in line
 * among them), answers still being written, whatever sent a byte lately, and connections handed
 * to `exempt` (WebSockets: the upgrade handler has limits of its own). Returns `exempt`.
 */
export function capConnections(
  server: Server,
  max: number,
  onDrop: (data?: { remoteAddress?: string }) => void,
  now = () => performance.now(),
): { exempt: (socket: Duplex) => void } {
  server.maxConnections = max;
  /** Each open connection: its bytes read when last looked at, and since when it had that many. */
  const seen = new Map<Socket, { bytes: number; since: number }>();
  server.on('connection', (socket: Socket) => {
    seen.set(socket, { bytes: 0, since: now() });
    socket.once('close', () => seen.delete(socket));
  });
  let cleared = -Infinity;
  server.on('drop', (data?: { remoteAddress?: string }) => {
    onDrop(data);
    const at = now();
    if (at - cleared < 1000) return;
    cleared = at;
    for (const [socket, last] of seen) {
      if (socket.bytesRead !== last.bytes) {
        seen.set(socket, { bytes: socket.bytesRead, since: at });
        continue;
      }
      const answering = (socket as Socket & { _httpMessage?: unknown })._httpMessage;
      if (at - last.since >= stillForMs && !answering && socket.writableLength === 0) {
        seen.delete(socket);
        socket.destroy();
      }
    }
  });
  return { exempt: (socket) => void seen.delete(socket as Socket) };
}

/** Connections the metrics port holds at most: Prometheus and the kubelet need a few. */
const adminMaxConnections = 1000;

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
          failures.warn('the listening socket failed (an accept, say: out of file descriptors)', {
            port,
            err: error,
          }),
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
