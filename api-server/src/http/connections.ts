import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
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

/** The `clientError` listener: the HTTP parser refused a request; answer it plainly and close. */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) return void socket.destroy();
  if (error.code === 'HPE_HEADER_OVERFLOW')
    return rawAnswer(socket, 431, 'The request headers are too large.');
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return rawAnswer(socket, 408, 'The request did not arrive in time.');
  rawAnswer(
    socket,
    400,
    'Malformed HTTP request (control characters or a bare CR/LF in a header?).',
  );
}
