import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { WebSocket } from 'ws';
import { LockService, MemoryStore, type HistoryStore, type LockStore } from '@retrospective/lock';
import { Lifecycle, createAdminServer, listen, stopServer } from '@retrospective/runtime';
import { buildApp } from '../app.js';
import {
  bearerProtocolPrefix,
  kubernetesAuthorizer,
  wsProtocol,
  type Reviewer,
} from '../auth/authorizer.js';
import { loadConfig } from '../config.js';
import { createMetrics } from '../metrics.js';

/**
 * The api-server built in-process over a MemoryStore, listening on an ephemeral loopback port.
 * With AUTH_MODE=kubernetes, `reviewer` stands in for TokenReview and SubjectAccessReview.
 */
export async function startTestApp<S extends LockStore = MemoryStore>(
  env: Record<string, string> = {},
  reviewer?: Reviewer,
  options: { store?: S; history?: HistoryStore; logger?: Logger } = {},
) {
  const config = loadConfig({ NAMESPACE: 'test', ...env });
  const history = options.history;
  const store = options.store ?? (new MemoryStore() as LockStore as S);
  await store.ensure(config.LOCKS);
  const metrics = createMetrics({ locks: config.LOCKS });
  const service = new LockService({ store, locks: config.LOCKS });
  const logger = options.logger ?? pino({ level: 'silent' });
  const lifecycle = new Lifecycle({
    logger,
    shutdownTimeoutMs: 5000,
    drainDelayMs: 0,
    exit: () => undefined,
  });
  const auth =
    config.AUTH_MODE === 'kubernetes' && reviewer
      ? kubernetesAuthorizer(config, reviewer, logger)
      : undefined;
  const app = buildApp({
    config,
    service,
    store,
    metrics,
    logger,
    lifecycle,
    ...(auth ? { auth } : {}),
    ...(history ? { history: (lock: string) => history.list(lock) } : {}),
  });
  app.start();
  const admin = createAdminServer({ registry: metrics.registry, lifecycle, logger });
  await listen(app.server, 0, '127.0.0.1');
  await listen(admin, 0, '127.0.0.1');
  const { port } = app.server.address() as AddressInfo;
  const metricsUrl = `http://127.0.0.1:${(admin.address() as AddressInfo).port}`;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    metricsUrl,
    store,
    service,
    metrics,
    app,
    lifecycle,
    /** The admin port's /metrics page. */
    metricsText: async () => (await fetch(`${metricsUrl}/metrics`)).text(),
    close: async () => {
      await app.stop();
      await stopServer(app.server);
      await stopServer(admin);
    },
  };
}

export interface Frame {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** A WebSocket client that records every frame and can wait for the next one of a type. */
export async function openSocket(
  url: string,
  options: { origin?: string; since?: string; locks?: string; token?: string; user?: string } = {},
) {
  const query = new URLSearchParams({
    ...(options.since ? { since: options.since } : {}),
    ...(options.locks !== undefined ? { locks: options.locks } : {}),
  }).toString();
  const ws = new WebSocket(
    `${url.replace(/^http/, 'ws')}/ws${query ? `?${query}` : ''}`,
    // A token travels as Kubernetes' bearer subprotocol, beside the protocol the server selects.
    options.token ? [wsProtocol, bearerProtocol(options.token)] : [],
    {
      ...(options.origin ? { origin: options.origin } : {}),
      ...(options.user ? { headers: { Username: options.user } } : {}),
    },
  );
  const frames: Frame[] = [];
  const waiters: { type: string; from: number; resolve: (f: Frame) => void }[] = [];
  ws.on('message', (data: Buffer) => {
    frames.push(JSON.parse(data.toString()) as Frame);
    for (const w of [...waiters]) {
      const hit = frames.slice(w.from).find((f) => f.type === w.type);
      if (hit) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(hit);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let cursor = 0;
  return {
    ws,
    frames,
    /** The next frame of `type` after the previous call's match (or from the start). */
    next(type: string, timeoutMs = 5000): Promise<Frame> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${type} frame within ${timeoutMs} ms`)),
          timeoutMs,
        );
        const done = (frame: Frame) => {
          clearTimeout(timer);
          cursor = frames.indexOf(frame) + 1;
          resolve(frame);
        };
        const hit = frames.slice(cursor).find((f) => f.type === type);
        if (hit) done(hit);
        else waiters.push({ type, from: cursor, resolve: done });
      });
    },
    close: () => ws.terminate(),
  };
}

/** The WebSocket subprotocol that carries a bearer token (as in the Kubernetes API). */
export const bearerProtocol = (token: string) =>
  bearerProtocolPrefix + Buffer.from(token).toString('base64url');

/**
 * Sends raw bytes as an HTTP request and returns the whole raw answer (or the answer up to and
 * including `until`, then closes: for an upgrade that stays open).
 */
export function rawRequest(
  port: number,
  request: string | Buffer,
  options: { until?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const text = () => Buffer.concat(chunks).toString('latin1');
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (options.until && text().includes(options.until)) {
        socket.destroy();
        resolve(text());
      }
    });
    socket.on('end', () => resolve(text()));
    socket.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'ECONNRESET' ? resolve(text()) : reject(e),
    );
    if (options.until) socket.write(request);
    else socket.end(request);
  });
}
