import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import {
  transitions,
  type LockService,
  type LockStore,
  type StoreChange,
} from '@retrospective/lock';
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';
import { checkBody, eventFrame } from './present.js';

export interface BroadcasterDeps {
  readonly config: Config;
  readonly service: LockService;
  readonly store: LockStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: () => Date;
}

/** How long a peer we close gets to complete the close handshake. */
const closeGraceMs = 1000;

/** Clients only listen; anything bigger than this from them closes the connection. */
const maxPayload = 1024;

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${reason}\n`,
  );
}

/**
 * Pushes every lock change this replica sees to its WebSocket clients. Each replica watches
 * the Leases itself, so a client hears every change wherever it was made.
 */
export class Broadcaster {
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload,
    perMessageDeflate: false,
  });
  private readonly alive = new WeakSet<WebSocket>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly unsubscribe: () => void;

  constructor(private readonly deps: BroadcasterDeps) {
    this.unsubscribe = deps.store.subscribe((change) => this.onChange(change));
    this.heartbeat = setInterval(() => this.ping(), deps.config.WS_HEARTBEAT_SECONDS * 1000);
    this.heartbeat.unref();
  }

  get clients(): number {
    return this.wss.clients.size;
  }

  /** Accepts an upgrade on /ws from an allowed origin; refuses anything else in plain HTTP. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { config, metrics } = this.deps;
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== '/ws') return refuseUpgrade(socket, 404, 'Not Found');
    if (!this.originAllowed(req)) return refuseUpgrade(socket, 403, 'Forbidden origin');
    if (this.wss.clients.size >= config.WS_MAX_CONNECTIONS)
      return refuseUpgrade(socket, 503, 'Too many connections');
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      metrics.wsConnections.inc();
      this.alive.add(ws);
      ws.on('pong', () => this.alive.add(ws));
      // Counted and logged once per connection; whatever else it sends is ignored until the
      // close completes, which drop() bounds.
      ws.once('message', () => this.drop(ws, 'client_message', 1008, 'this socket only sends'));
      ws.on('error', () => ws.terminate());
      ws.on('close', () => metrics.wsConnections.dec());
      this.send(ws, { type: 'snapshot', locks: this.snapshot() });
    });
  }

  /** Closes every client with 1001 (going away) and stops listening to the store. */
  close(): void {
    clearInterval(this.heartbeat);
    this.unsubscribe();
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    this.wss.close();
  }

  private snapshot() {
    const now = this.deps.clock();
    return this.deps.service.locks.flatMap((lock) => {
      try {
        return [checkBody(this.deps.service.state(lock), now)];
      } catch {
        return [];
      }
    });
  }

  private onChange(change: StoreChange): void {
    if (!change.next || !this.deps.service.has(change.name)) return;
    const seen = performance.now();
    const events = transitions(change.prev, change.next);
    for (const event of events) {
      const frame = eventFrame(event);
      for (const ws of this.wss.clients) this.send(ws, frame);
    }
    if (events.length) this.deps.metrics.broadcastDelay.observe((performance.now() - seen) / 1000);
  }

  private send(ws: WebSocket, frame: { type: string } & Record<string, unknown>): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    // A client that stopped reading would make us buffer without bound: drop it instead.
    if (ws.bufferedAmount > this.deps.config.WS_MAX_BUFFERED_BYTES)
      return this.drop(ws, 'slow_consumer');
    ws.send(JSON.stringify(frame));
    this.deps.metrics.wsMessages.inc({ type: frame.type });
  }

  private ping(): void {
    for (const ws of this.wss.clients) {
      if (!this.alive.has(ws)) {
        this.drop(ws, 'heartbeat');
        continue;
      }
      this.alive.delete(ws);
      ws.ping();
    }
  }

  private drop(ws: WebSocket, reason: string, code?: number, message?: string): void {
    this.deps.metrics.wsDropped.inc({ reason });
    this.deps.logger.info({ reason }, 'websocket client dropped');
    if (!code) return ws.terminate();
    ws.close(code, message);
    // A peer that does not answer the close handshake at once is cut off, not waited for.
    setTimeout(() => ws.terminate(), closeGraceMs).unref();
  }

  private originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (!origin) return true; // not a browser: nothing to protect against cross-site use
    try {
      if (new URL(origin).host === req.headers.host) return true;
    } catch {
      return false;
    }
    return this.deps.config.ALLOWED_ORIGINS.some((allowed) => new URL(allowed).origin === origin);
  }
}
