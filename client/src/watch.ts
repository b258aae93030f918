import WebSocket from 'ws';
import type { Credentials } from './credentials.js';
import type { Frame } from './types.js';

export interface WatchOptions {
  /** Only these locks' frames (at most 100); every lock you may view when absent. */
  readonly locks?: readonly string[];
  /** Resume after these release tokens (lock -> token): the releases missed since are replayed. */
  readonly since?: ReadonlyMap<string, number>;
  readonly onFrame: (frame: Frame) => void;
  /** The socket closed and will be opened again (after a short pause) and resumed. */
  readonly onReconnect?: (reason: string) => void;
  /** The service refused the socket for good (an unknown lock, no permission): no retry. */
  readonly onError?: (error: Error) => void;
  readonly signal?: AbortSignal;
}

export interface Watch {
  /** Settles on the first snapshot (the subscription is in place), or with the refusal. */
  readonly opened: Promise<void>;
  close(): void;
}

/** Longest pause between two attempts to open the socket again. */
const maxBackoffMs = 5000;

/**
 * The service's WebSocket, kept open: on every reconnect it resumes after the last release
 * token seen of each lock, so no release is missed and none is told twice (the service marks
 * replays; a replayed release at or below a token already seen is dropped here).
 */
export function watch(url: string, credentials: Credentials, options: WatchOptions): Watch {
  const seen = new Map(options.since ?? []);
  let socket: WebSocket | undefined;
  let closed = false;
  let backoff = 250;
  let retry: NodeJS.Timeout | undefined;
  let settle: { resolve: () => void; reject: (error: Error) => void } | undefined;
  const opened = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  // A caller that only awaits frames must not see an unhandled rejection.
  opened.catch(() => {});

  const isClosed = () => closed;
  const fail = (error: Error) => {
    closed = true;
    settle?.reject(error);
    settle = undefined;
    options.onError?.(error);
  };

  const open = async () => {
    if (closed) return;
    const target = new URL(`${url.replace(/^http/, 'ws')}/ws`);
    if (options.locks?.length) target.searchParams.set('locks', options.locks.join(','));
    if (seen.size)
      target.searchParams.set(
        'since',
        [...seen].map(([lock, token]) => `${lock}:${token}`).join(','),
      );
    let headers: Record<string, string>;
    try {
      headers = await credentials.headers();
    } catch (error) {
      fail(error as Error);
      return;
    }
    // close() may have run while the credentials were asked for.
    if (isClosed()) return;
    const ws = new WebSocket(target, ['retrospective.v1'], { headers, maxPayload: 64 << 20 });
    socket = ws;
    ws.on('message', (data: Buffer) => {
      let frame: Frame;
      try {
        frame = JSON.parse(data.toString('utf8')) as Frame;
      } catch {
        return;
      }
      if (frame.type === 'snapshot') {
        backoff = 250;
        settle?.resolve();
        settle = undefined;
      }
      // A deleted lock is no longer resumed: naming it would have the next socket refused.
      if (frame.type === 'removed') seen.delete(frame.lock);
      if (frame.type === 'released') {
        const last = seen.get(frame.lock);
        if (frame.replayed && last !== undefined && frame.token <= last) return;
        seen.set(frame.lock, Math.max(last ?? 0, frame.token));
      }
      options.onFrame(frame);
    });
    ws.on('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      ws.terminate();
      // A resume naming a lock this replica does not know (deleted, or not yet seen here):
      // open again without resuming rather than give up.
      if (status === 400 && seen.size > 0 && !options.since?.size) {
        seen.clear();
        return;
      }
      // 401 may be an expired token (asked for again next time); 5xx and 429 pass.
      if ([400, 403, 404].includes(status))
        fail(
          new Error(
            `The service refused the watch (${status}): check the lock names and your permissions.`,
          ),
        );
    });
    ws.on('error', () => {});
    ws.on('close', (code) => {
      if (closed || socket !== ws) return;
      options.onReconnect?.(`socket closed (${code})`);
      const pause = backoff;
      backoff = Math.min(backoff * 2, maxBackoffMs);
      retry = setTimeout(() => void open(), pause);
    });
  };

  const close = () => {
    closed = true;
    clearTimeout(retry);
    socket?.close(1000);
    socket = undefined;
    settle?.reject(new Error('The watch was closed.'));
    settle = undefined;
  };
  options.signal?.addEventListener('abort', close, { once: true });
  void open();
  return { opened, close };
}
