import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import {
  transitions,
  type HistoryEntry,
  type LockService,
  type LockState,
  type LockStore,
  type StoreChange,
} from '@retrospective/lock';
import { wsProtocol, type Authorizer, type Identity } from './auth.js';
import type { Config } from './config.js';
import { toHttpError } from './errors.js';
import type { Metrics } from './metrics.js';
import { originAllowed } from './origin.js';
import { checkBody, eventFrame } from './present.js';
import type { SocketCommands } from './ws-commands.js';
import {
  RecentReleases,
  historyFrame,
  lastRelease,
  missedReleases,
  parseSince,
  type ReleasedFrame,
} from './replay.js';

export interface BroadcasterDeps {
  readonly config: Config;
  readonly service: LockService;
  readonly store: LockStore;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: () => Date;
  readonly auth: Authorizer;
  /** What clients may send: take and release locks (the management view's buttons). */
  readonly commands: SocketCommands;
  /** Each lock's recorded releases, for clients that resume with `?since=`. */
  readonly history?:
    ((lock: string) => readonly HistoryEntry[] | Promise<readonly HistoryEntry[]>) | undefined;
}

type Frame = { type: string } & Record<string, unknown>;

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
    // Only our own protocol is ever selected: never echo a protocol that carries a token.
    handleProtocols: (offered) => (offered.has(wsProtocol) ? wsProtocol : false),
  });
  /** The locks each client may view (all of them in header mode), and who it is. */
  private readonly viewable = new WeakMap<WebSocket, ReadonlySet<string>>();
  private readonly identities = new WeakMap<WebSocket, Identity>();
  /** Clients with a command in flight: one at a time each. */
  private readonly busy = new WeakSet<WebSocket>();
  private readonly alive = new WeakSet<WebSocket>();
  private readonly recent = new RecentReleases();
  /** Live frames held back from clients whose missed releases are still being sent. */
  private readonly replaying = new Map<WebSocket, Frame[]>();
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

  /**
   * Accepts an upgrade on /ws from an allowed origin and a caller allowed to view at least one
   * lock; refuses anything else in plain HTTP.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { config, metrics, service } = this.deps;
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== '/ws') return refuseUpgrade(socket, 404, 'Not Found');
    const since = parseSince(url.searchParams.get('since'), service.locks);
    if (since instanceof Error) return refuseUpgrade(socket, 400, since.message);
    if (!originAllowed(req, config)) {
      metrics.authRefusals.inc({ reason: 'forbidden_origin' });
      return refuseUpgrade(socket, 403, 'Forbidden origin');
    }
    if (this.wss.clients.size >= config.WS_MAX_CONNECTIONS)
      return refuseUpgrade(socket, 503, 'Too many connections');
    void this.viewableBy(req).then(
      ({ locks, who }) => {
        if (socket.destroyed) return;
        if (locks.size === 0) {
          metrics.authRefusals.inc({ reason: 'forbidden' });
          return refuseUpgrade(socket, 403, 'Forbidden');
        }
        this.accept(req, socket, head, { locks, who }, since);
      },
      (error: unknown) => {
        const http = toHttpError(error);
        if (http.status === 401 || http.status === 403)
          metrics.authRefusals.inc({ reason: http.code });
        refuseUpgrade(socket, http.status, http.message);
      },
    );
  }

  /** Who sends `req`, and the locks they may view. */
  private async viewableBy(req: IncomingMessage) {
    const { auth, service } = this.deps;
    const who = await auth.identify(req, 'view');
    const allowed = await Promise.all(service.locks.map((lock) => auth.allowed(who, 'view', lock)));
    return { who, locks: new Set(service.locks.filter((_, i) => allowed[i])) };
  }

  private accept(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    { locks, who }: { locks: ReadonlySet<string>; who: Identity | undefined },
    since: Map<string, number> | undefined,
  ): void {
    const { metrics } = this.deps;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.viewable.set(ws, locks);
      if (who) this.identities.set(ws, who);
      metrics.wsConnections.inc();
      this.alive.add(ws);
      ws.on('pong', () => this.alive.add(ws));
      const gone = new AbortController();
      ws.on('message', (data: RawData, isBinary: boolean) =>
        this.onMessage(ws, data, isBinary, gone.signal),
      );
      ws.on('error', () => ws.terminate());
      ws.on('close', () => {
        gone.abort();
        metrics.wsConnections.dec();
        this.replaying.delete(ws);
      });
      this.send(ws, { type: 'snapshot', locks: this.snapshot(locks) });
      if (since) void this.replay(ws, since);
    });
  }

  /**
   * Sends a resuming client the releases after the tokens it last saw (from this replica's recent
   * frames, the recorded history and each Lease's own last release), then what went live meanwhile.
   */
  private async replay(ws: WebSocket, since: Map<string, number>): Promise<void> {
    const held: Frame[] = [];
    this.replaying.set(ws, held);
    const sent = new Set<string>();
    try {
      for (const [lock, token] of since) {
        if (!this.viewable.get(ws)?.has(lock)) continue;
        const history = (await this.deps.history?.(lock)) ?? [];
        const state = this.deps.store.cached(lock)?.state;
        const fromLease = state ? lastRelease(state) : undefined;
        const missed = missedReleases(token, [
          history.map((entry) => historyFrame(lock, entry)),
          this.recent.of(lock),
          fromLease ? [fromLease] : [],
        ]);
        for (const frame of missed) {
          sent.add(`${lock}:${frame.token}`);
          this.send(ws, { ...frame, replayed: true });
        }
      }
    } catch (error) {
      this.deps.logger.warn({ err: error }, 'could not replay missed releases');
    } finally {
      this.replaying.delete(ws);
      for (const frame of held)
        if (frame.type !== 'released' || !sent.has(`${String(frame.lock)}:${String(frame.token)}`))
          this.send(ws, frame);
    }
  }

  /** Closes every client with 1001 (going away) and stops listening to the store. */
  close(): void {
    clearInterval(this.heartbeat);
    this.unsubscribe();
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    this.wss.close();
  }

  private snapshot(viewable: ReadonlySet<string>) {
    const now = this.deps.clock();
    return this.deps.service.locks.flatMap((lock) => {
      if (!viewable.has(lock)) return [];
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
    const frames: Frame[] = transitions(change.prev, change.next).map(eventFrame);
    // Who waits in line, when that changed (a renewal of entries alone is not a change).
    const line = (state: LockState | undefined) =>
      (state?.queue ?? []).map((w) => ({ user: w.user, since: w.since.toISOString() }));
    const waiting = line(change.next);
    if (JSON.stringify(line(change.prev)) !== JSON.stringify(waiting))
      frames.push({ type: 'queue', lock: change.name, waiting });
    for (const frame of frames) {
      if (frame.type === 'released') this.recent.add(frame as unknown as ReleasedFrame);
      for (const ws of this.wss.clients) {
        if (!this.viewable.get(ws)?.has(change.name)) continue;
        const held = this.replaying.get(ws);
        if (held) held.push(frame);
        else this.send(ws, frame);
      }
    }
    if (frames.length) this.deps.metrics.broadcastDelay.observe((performance.now() - seen) / 1000);
  }

  /**
   * A command from the client, answered with a `reply` frame; anything that is not a command
   * closes the connection (1008), counted and logged once.
   */
  private onMessage(ws: WebSocket, data: RawData, isBinary: boolean, gone: AbortSignal): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    const cmd = this.deps.commands.parse(data, isBinary);
    if (!cmd) return this.drop(ws, 'client_message', 1008, 'not a command');
    if (this.busy.has(ws)) {
      const message = 'One command at a time: wait for the reply.';
      return this.send(ws, { type: 'reply', id: cmd.id, ok: false, error: 'busy', message });
    }
    this.busy.add(ws);
    void this.deps.commands.run(cmd, this.identities.get(ws), gone).then((reply) => {
      this.busy.delete(ws);
      this.send(ws, reply);
    });
  }

  private send(ws: WebSocket, frame: Frame): void {
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
}
