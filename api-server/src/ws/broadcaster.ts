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
import { SampledLog, safely } from '@retrospective/runtime';
import { wsProtocol, type Authorizer, type Freshness, type Identity } from '../auth/authorizer.js';
import type { OriginVerdict } from '../auth/origin.js';
import type { Config } from '../config.js';
import { toHttpError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { checkBody, eventFrame } from '../present.js';
import type { SocketCommands } from './commands.js';
import {
  RecentReleases,
  historyFrame,
  lastRelease,
  missedReleases,
  type ReleasedFrame,
} from './replay.js';
import { viewable } from './viewable.js';

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

/** Who a connected client is, what it may see, and where it connected from. */
export interface SocketClient {
  who: Identity | undefined;
  /** The locks it is sent frames of: those it asked for (`?locks=`), or all, that it may view. */
  locks: ReadonlySet<string>;
  /** The locks it asked for; undefined: every lock, those declared later included. */
  readonly subscribed: ReadonlySet<string> | undefined;
  readonly origin: OriginVerdict;
  readonly address: string;
  /** The handshake, kept to check the client's credentials again (kubernetes mode). */
  readonly req: IncomingMessage;
  /** Aborted when the socket closes: a wait in line it started ends. */
  readonly gone: AbortController;
  alive: boolean;
  /** When its credentials were last found good (performance.now()). */
  checked: number;
  /** One command in flight at a time. */
  busy: boolean;
  /** Live frames held back while its missed releases are sent. */
  held: { type: string; data: string; lock: string; token: unknown }[] | undefined;
}

/** How long a peer we close gets to complete the close handshake. */
const closeGraceMs = 1000;

/** Open sockets whose credentials are checked again at the same time. */
const reauthorizeAtOnce = 16;

/** Clients send short commands; anything bigger than this closes the connection. */
const maxPayload = 1024;

/**
 * Pushes every lock change this replica sees to its WebSocket clients. Each replica watches the
 * Leases itself, so a client hears every change wherever it was made. In kubernetes auth mode each
 * client's credentials are checked again every AUTH_CACHE_SECONDS: a revoked one is closed (1008).
 */
export class Broadcaster {
  private readonly wss = new WebSocketServer({
    noServer: true,
    maxPayload,
    perMessageDeflate: false,
    // Only our own protocol is ever selected: never echo a protocol that carries a token.
    handleProtocols: (offered) => (offered.has(wsProtocol) ? wsProtocol : false),
  });
  private readonly clientsBySocket = new Map<WebSocket, SocketClient>();
  private readonly recent = new RecentReleases();
  private timers: NodeJS.Timeout[] = [];
  private unsubscribe: (() => void) | undefined;
  private unsubscribeCatalog: (() => void) | undefined;
  /** Failing re-checks (an API server outage) are logged once a minute, with a count. */
  private readonly failures: SampledLog;

  constructor(private readonly deps: BroadcasterDeps) {
    this.failures = new SampledLog(deps.logger);
  }

  get clients(): number {
    return this.wss.clients.size;
  }

  /** Follows the locks, pings clients, and checks their credentials again; call once. */
  start(): void {
    const { store, config, logger, auth } = this.deps;
    this.unsubscribe = store.subscribe(safely(logger, 'broadcast', (c) => this.onChange(c)));
    this.unsubscribeCatalog = this.deps.service.catalog.subscribe(
      safely(logger, 'broadcast', ({ name, policy }) =>
        policy ? this.declared(name) : this.removed(name),
      ),
    );
    const every = (seconds: number, what: string, fn: () => unknown) => {
      const timer = setInterval(safely(logger, what, fn), seconds * 1000);
      timer.unref();
      this.timers.push(timer);
    };
    every(config.WS_HEARTBEAT_SECONDS, 'websocket heartbeat', () => this.ping());
    // Checked every half period on answers at most half a period old: a revoked client is closed
    // within AUTH_CACHE_SECONDS of the revocation, like an HTTP request would be refused.
    if (auth.mode === 'kubernetes')
      every(config.AUTH_CACHE_SECONDS / 2, 'websocket re-authorization', () => this.reauthorize());
  }

  /** Closes every client with 1001 (going away) and stops listening to the store. */
  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.unsubscribe?.();
    this.unsubscribeCatalog?.();
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    this.wss.close();
  }

  /** Completes a handshake the upgrade handler accepted, then sends the snapshot (and any replay). */
  accept(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    client: Pick<SocketClient, 'who' | 'locks' | 'subscribed' | 'origin' | 'address'> & {
      since: Map<string, number> | undefined;
    },
  ): void {
    const { metrics, logger } = this.deps;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const state: SocketClient = {
        who: client.who,
        locks: client.locks,
        subscribed: client.subscribed,
        origin: client.origin,
        address: client.address,
        req,
        gone: new AbortController(),
        alive: true,
        checked: performance.now(),
        busy: false,
        held: undefined,
      };
      this.clientsBySocket.set(ws, state);
      metrics.wsConnections.inc();
      ws.on('error', () => ws.terminate());
      ws.on('pong', () => (state.alive = true));
      ws.on(
        'message',
        safely(logger, 'websocket message', (data: RawData, isBinary: boolean) =>
          this.onMessage(ws, state, data, isBinary),
        ),
      );
      ws.on('close', () => {
        state.gone.abort();
        metrics.wsConnections.dec();
        this.clientsBySocket.delete(ws);
      });
      this.send(ws, { type: 'snapshot', locks: this.snapshot(state.locks) });
      if (client.since) void this.replay(ws, state, client.since);
    });
  }

  /**
   * Sends a resuming client the releases after the tokens it last saw (from this replica's recent
   * frames, the recorded history and each Lease's own last release), then what went live meanwhile.
   */
  private async replay(ws: WebSocket, client: SocketClient, since: Map<string, number>) {
    const held: NonNullable<SocketClient['held']> = [];
    client.held = held;
    const sent = new Set<string>();
    try {
      for (const [lock, token] of since) {
        if (!client.locks.has(lock)) continue;
        const history = await this.recorded(lock);
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
      client.held = undefined;
      for (const frame of held)
        if (frame.type !== 'released' || !sent.has(`${frame.lock}:${String(frame.token)}`))
          this.sendData(ws, frame.type, frame.data);
    }
  }

  /**
   * The lock's recorded releases; none while they cannot be read (a replica that just started has
   * not loaded them yet): this replica's recent frames and the Lease's last release still replay.
   */
  private async recorded(lock: string) {
    try {
      return (await this.deps.history?.(lock)) ?? [];
    } catch (error) {
      this.deps.logger.warn({ err: error, lock }, 'could not read the history to replay from');
      return [];
    }
  }

  private snapshot(viewable: ReadonlySet<string>) {
    const { service, clock } = this.deps;
    const now = clock();
    return service.locks.flatMap((lock) => {
      const state = viewable.has(lock) ? service.peek(lock) : undefined;
      return state ? [this.lockFrame(state, now)] : [];
    });
  }

  /** A lock as snapshot and `added` frames show it: its `check` body and its alert threshold. */
  private lockFrame(state: LockState, now: Date) {
    const { service } = this.deps;
    return {
      ...checkBody(state, now, service.liveQueue(state)),
      heldTooLongSeconds: service.catalog.policy(state.name)?.heldTooLongSeconds,
    };
  }

  /**
   * A lock declared while clients are connected: those that asked for every lock, and may view
   * it, are sent its frames from now on (an `added` frame first, once its Lease exists).
   */
  private declared(lock: string): void {
    const { auth } = this.deps;
    for (const [ws, client] of this.clientsBySocket) {
      if (client.subscribed || client.locks.has(lock)) continue;
      void auth
        .allowed(client.who, 'view', lock)
        .then((allowed) => {
          if (!allowed || ws.readyState !== WebSocket.OPEN || !this.deps.service.has(lock)) return;
          client.locks = new Set([...client.locks, lock]);
          const state = this.deps.service.peek(lock);
          if (state) this.sendAdded(ws, state);
        })
        .catch((error: unknown) =>
          this.failures.warn('could not check a client for a new lock', { err: error }),
        );
    }
  }

  /** A lock deleted: its viewers are told with a `removed` frame and sent nothing more of it. */
  private removed(lock: string): void {
    this.recent.forget(lock); // a Lock declared again under this name is another lock
    const data = JSON.stringify({ type: 'removed', lock });
    for (const [ws, client] of this.clientsBySocket) {
      if (!client.locks.has(lock)) continue;
      client.locks = new Set([...client.locks].filter((l) => l !== lock));
      this.sendData(ws, 'removed', data);
    }
  }

  private sendAdded(ws: WebSocket, state: LockState): void {
    this.send(ws, { type: 'added', lock: this.lockFrame(state, this.deps.clock()) });
  }

  private onChange(change: StoreChange): void {
    const { service, metrics } = this.deps;
    if (!change.next || !service.has(change.name)) return;
    // A declared lock's Lease was just made: its viewers get its first state.
    if (!change.prev)
      for (const [ws, client] of this.clientsBySocket)
        if (client.locks.has(change.name)) this.sendAdded(ws, change.next);
    const seen = performance.now();
    const frames: Frame[] = transitions(change.prev, change.next).map(eventFrame);
    // Who waits in line, when that changed (a renewal of entries alone is not a change); only
    // for clients connected now (release frames are also kept for those who resume later).
    const line = (state: LockState | undefined) =>
      (state ? service.liveQueue(state) : []).map((w) => ({
        user: w.user,
        since: w.since.toISOString(),
      }));
    const waiting = this.clientsBySocket.size ? line(change.next) : undefined;
    if (waiting && JSON.stringify(line(change.prev)) !== JSON.stringify(waiting))
      frames.push({ type: 'queue', lock: change.name, waiting });
    for (const frame of frames) {
      if (frame.type === 'released') this.recent.add(frame as unknown as ReleasedFrame);
      // Serialised once, however many clients get it.
      const data = JSON.stringify(frame);
      for (const [ws, client] of this.clientsBySocket) {
        if (!client.locks.has(change.name)) continue;
        if (client.held)
          client.held.push({ type: frame.type, data, lock: change.name, token: frame.token });
        else this.sendData(ws, frame.type, data);
      }
    }
    if (frames.length) metrics.broadcastDelay.observe((performance.now() - seen) / 1000);
  }

  /**
   * A command from the client, answered with a `reply` frame; anything that is not a command
   * closes the connection (1008), counted and logged once.
   */
  private onMessage(ws: WebSocket, client: SocketClient, data: RawData, isBinary: boolean) {
    if (ws.readyState !== WebSocket.OPEN) return;
    const { commands } = this.deps;
    const cmd = commands.parse(data, isBinary);
    if (!cmd) return this.drop(ws, 'client_message', 1008, 'not a command');
    if (client.busy) {
      const message = 'One command at a time: wait for the reply.';
      const reply = { type: 'reply', id: cmd.id, lock: cmd.lock, command: cmd.type, ok: false };
      return this.send(ws, { ...reply, error: 'busy', message });
    }
    client.busy = true;
    void commands
      .run(cmd, client)
      .then((reply) => this.send(ws, reply))
      .finally(() => (client.busy = false));
  }

  /**
   * Checks every client's credentials again; closes those refused (1008), narrows what others
   * see. A client whose credentials could not be checked for two periods (the API server is
   * unreachable) is closed too (1013, try again later): it reconnects and is checked then.
   */
  private async reauthorize(): Promise<void> {
    const { config } = this.deps;
    const periodMs = config.AUTH_CACHE_SECONDS * 1000;
    const fresh = { maxAgeMs: periodMs / 2, known: true } as const;
    // A few at a time: thousands of sockets with tokens of their own must not flood the API
    // server (or crowd out new callers) every period.
    const clients = [...this.clientsBySocket];
    for (let i = 0; i < clients.length; i += reauthorizeAtOnce)
      await Promise.all(
        clients
          .slice(i, i + reauthorizeAtOnce)
          .map(([ws, client]) => this.recheck(ws, client, fresh, periodMs)),
      );
  }

  private async recheck(
    ws: WebSocket,
    client: SocketClient,
    fresh: Freshness,
    periodMs: number,
  ): Promise<void> {
    const { auth, service } = this.deps;
    if (ws.readyState !== WebSocket.OPEN) return;
    try {
      const who = await auth.identify(client.req, 'view', fresh);
      // The locks asked for, or (for a client of every lock) those it is sent now.
      const asked = [...(client.subscribed ?? client.locks)].filter((lock) => service.has(lock));
      const found = await viewable(auth, who, asked, fresh);
      if (found === 'too_many') return this.drop(ws, 'unauthorized', 1008, 'no longer allowed');
      // Locks added or removed while this check ran keep what they did meanwhile.
      const locks = new Set(
        [...found, ...[...client.locks].filter((lock) => !asked.includes(lock))].filter((lock) =>
          service.has(lock),
        ),
      );
      if (locks.size === 0) return this.drop(ws, 'unauthorized', 1008, 'no longer allowed');
      client.who = who;
      client.locks = locks;
      client.checked = performance.now();
    } catch (error) {
      const http = toHttpError(error);
      if (http.status === 401 || http.status === 403)
        return this.drop(ws, 'unauthorized', 1008, 'credentials no longer valid');
      this.failures.warn('could not check a websocket client again', { err: error });
      if (performance.now() - client.checked > 2 * periodMs)
        this.drop(ws, 'unauthorized', 1013, 'credentials cannot be checked');
    }
  }

  private send(ws: WebSocket, frame: Frame): void {
    this.sendData(ws, frame.type, JSON.stringify(frame));
  }

  private sendData(ws: WebSocket, type: string, data: string): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    // A client that stopped reading would make us buffer without bound: drop it instead.
    if (ws.bufferedAmount > this.deps.config.WS_MAX_BUFFERED_BYTES)
      return this.drop(ws, 'slow_consumer');
    ws.send(data);
    this.deps.metrics.wsMessages.inc({ type });
  }

  private ping(): void {
    for (const [ws, client] of this.clientsBySocket) {
      if (!client.alive) {
        this.drop(ws, 'heartbeat');
        continue;
      }
      client.alive = false;
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
