import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { SampledLog } from '@retrospective/runtime';
import type { Metrics } from '../metrics.js';
import { rawAnswer } from './raw.js';

/**
 * Hands requests to `app`, but closes a connection with more than `max` requests waiting for
 * their answers: a client that pipelines requests and never reads the replies would otherwise
 * make the server build and hold every reply.
 */
export function pipelineGate(
  app: (req: IncomingMessage, res: ServerResponse) => void,
  max: number,
  logger: Logger,
  metrics: Metrics,
) {
  const waiting = new WeakMap<Socket, number>();
  return (req: IncomingMessage, res: ServerResponse) => {
    const socket = req.socket;
    const count = (waiting.get(socket) ?? 0) + 1;
    waiting.set(socket, count);
    res.once('close', () => waiting.set(socket, (waiting.get(socket) ?? 1) - 1));
    if (count <= max) return app(req, res);
    if (!socket.destroyed) {
      metrics.httpDropped.inc({ reason: 'pipelining' });
      logger.warn(
        { remote: socket.remoteAddress, waiting: count },
        'closing a connection that pipelines without reading',
      );
      socket.destroy();
    }
  };
}

/**
 * Hears of a connection over `max` (the server's maxConnections), which Node closed as it arrived,
 * without a byte read. Counted, and logged once a minute at most, as a flood would otherwise flood
 * the log too. Behind an Ingress the address is the ingress controller's.
 */
export function connectionDropped(max: number, logger: Logger, metrics: Metrics) {
  const log = new SampledLog(logger);
  return (data?: { remoteAddress?: string }) => {
    metrics.httpDropped.inc({ reason: 'connection_limit' });
    log.warn('closing new connections: the replica holds as many as it may', {
      max,
      remote: data?.remoteAddress,
    });
  };
}

/**
 * The `clientError` listener: the HTTP parser refused a request, or a request did not arrive in
 * time; answers it plainly and closes.
 *
 * A connection that timed out without sending a single byte is not answered. It is a proxy's
 * spare: Go's transport (Traefik's) dials one while it waits for a busy connection, uses the one
 * that frees up first, and parks the other in its pool. A 408 on it races with the first request
 * the proxy sends there, and that request is then answered 408. So it is kept, like an idle
 * keep-alive connection, and closed silently after `spareMs` unless a request has begun on it
 * (whose headers then get the usual time).
 */
export function clientErrorListener(spareMs: number, metrics: Metrics) {
  return (error: NodeJS.ErrnoException, socket: Duplex & { bytesRead?: number }): void => {
    const timedOut = error.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if (timedOut && socket.bytesRead === 0 && !socket.destroyed) {
      const timer = setTimeout(() => {
        if (socket.bytesRead !== 0 || socket.destroyed) return;
        metrics.httpDropped.inc({ reason: 'never_used' });
        socket.destroy();
      }, spareMs).unref();
      // Not holding on to a socket that is gone.
      return void socket.once('close', () => clearTimeout(timer));
    }
    if (!socket.writable) return void socket.destroy();
    if (timedOut) {
      metrics.httpDropped.inc({ reason: 'request_timeout' });
      return rawAnswer(socket, 408, 'The request did not arrive in time.');
    }
    if (error.code === 'HPE_HEADER_OVERFLOW') {
      metrics.httpDropped.inc({ reason: 'headers_too_large' });
      return rawAnswer(socket, 431, 'The request headers are too large.');
    }
    // A socket error (a reset, say) rather than a refusal of the parser: nobody to answer.
    if (!error.code?.startsWith('HPE_')) return void socket.destroy();
    metrics.httpDropped.inc({ reason: 'malformed' });
    rawAnswer(
      socket,
      400,
      'Malformed HTTP request (control characters or a bare CR/LF in a header?).',
    );
  };
}
