import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { LockService } from '@retrospective/lock';
import { dnsLabel } from '@retrospective/runtime';
import type { Authorizer } from '../auth/authorizer.js';
import { clientAddress, originVerdict } from '../auth/origin.js';
import type { Config } from '../config.js';
import { toHttpError } from '../errors.js';
import { guardSocket, rawAnswer } from '../http/raw.js';
import type { Metrics } from '../metrics.js';
import type { Broadcaster } from './broadcaster.js';
import { parseSince } from './replay.js';
import { maxSubscribedLocks, viewable } from './viewable.js';

export interface UpgradeDeps {
  readonly config: Config;
  readonly service: LockService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly auth: Authorizer;
  readonly broadcaster: Broadcaster;
}

/**
 * The `upgrade` listener: accepts a WebSocket on /ws from an allowed origin and a caller allowed
 * to view at least one lock, and refuses anything else in plain HTTP. The socket has an error
 * listener from the first line, and no refusal carries client text in its status line or headers.
 */
export function upgradeHandler(deps: UpgradeDeps) {
  const { config, service, metrics, logger, auth, broadcaster } = deps;
  /** Handshakes whose credentials are being checked: they count against the connection limit. */
  let pending = 0;

  const refuseAuth = (socket: Duplex, error: unknown) => {
    const http = toHttpError(error);
    if (http.status === 401 || http.status === 403) metrics.authRefusals.inc({ reason: http.code });
    if (http.code === 'internal') logger.error({ err: error }, 'websocket upgrade failed');
    rawAnswer(socket, http.status, http.message, http.headers);
  };

  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/ws') return rawAnswer(socket, 404, 'Not Found');
    const origin = originVerdict(req, config);
    if (origin !== 'allowed') {
      metrics.authRefusals.inc({ reason: 'forbidden_origin' });
      return rawAnswer(socket, 403, 'Forbidden origin');
    }
    if (broadcaster.clients + pending >= config.WS_MAX_CONNECTIONS)
      return rawAnswer(socket, 503, 'Too many connections', { 'Retry-After': '5' });
    // Parsed only now: what the client put in the query is read after the origin check.
    const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
    const since = parseSince(query.get('since'), service.locks);
    if (since instanceof Error) return rawAnswer(socket, 400, since.message);
    const subscribed = parseLocks(query.get('locks'));
    if (subscribed instanceof Error) return rawAnswer(socket, 400, subscribed.message);
    pending++;
    try {
      const who = await auth.identify(req, 'view');
      // Which locks exist is told only to callers who are who they say.
      if (subscribed && ![...subscribed].every((lock) => service.has(lock)))
        return rawAnswer(socket, 400, 'locks: it names a lock that does not exist');
      const locks = await viewable(auth, who, subscribed ? [...subscribed] : service.locks);
      if (locks === 'too_many') {
        metrics.authRefusals.inc({ reason: 'forbidden' });
        return rawAnswer(
          socket,
          403,
          `You may view only some locks: name them with ?locks= (at most ${maxSubscribedLocks})`,
        );
      }
      if (socket.destroyed) return;
      if (locks.size === 0) {
        metrics.authRefusals.inc({ reason: 'forbidden' });
        return rawAnswer(socket, 403, 'Forbidden');
      }
      broadcaster.accept(req, socket, head, {
        who,
        locks,
        subscribed,
        origin,
        address: clientAddress(req, config.TRUSTED_PROXY_HOPS),
        since,
      });
    } finally {
      pending--;
    }
  };

  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    guardSocket(socket);
    upgrade(req, socket, head).catch((error: unknown) => {
      try {
        if (!socket.destroyed) refuseAuth(socket, error);
      } catch (failure) {
        logger.error({ err: failure }, 'could not refuse a websocket upgrade');
        socket.destroy();
      }
    });
  };
}

/**
 * `?locks=a,b`: the locks a client wants frames of (absent: every lock it may view, those
 * declared later included). Only names of locks served now; never echoed back (see rawAnswer).
 */
export function parseLocks(value: string | null): ReadonlySet<string> | undefined | Error {
  if (value === null) return undefined;
  const names = value.split(',');
  if (names.length > maxSubscribedLocks)
    return new Error(`locks: at most ${maxSubscribedLocks} names`);
  if (!names.every((name) => dnsLabel.test(name)))
    return new Error('locks: a comma-separated list of lock names');
  return new Set(names);
}
