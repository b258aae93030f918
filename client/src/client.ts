import type { Credentials } from './credentials.js';
import { Hold, type HoldOptions } from './hold.js';
import type {
  AvailQuery,
  Grant,
  History,
  HistoryQuery,
  ListQuery,
  LockCheck,
  LockList,
  Me,
  Mutation,
  Refusal,
} from './types.js';
import { watch, type Watch, type WatchOptions } from './watch.js';

/** A refusal from the service (or an answer that was not one), with its stable code. */
export class RetrospectiveError extends Error {
  override readonly name = 'RetrospectiveError';

  constructor(
    /** The HTTP status; 0 when the service could not be reached. */
    readonly status: number,
    /** The service's code (`locked`, `stale_token`, ...), or `unreachable`, `bad_answer`. */
    readonly code: string,
    message: string,
    /** Seconds the service asked to wait before trying again (Retry-After). */
    readonly retryAfter?: number,
    /** The whole JSON body of the refusal. */
    readonly body?: Refusal & Record<string, unknown>,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  /** Where the service answers: `http://localhost:9090`, or its Ingress URL (a path prefix is kept). */
  readonly url: string;
  readonly credentials: Credentials;
  /** Sent as User-Agent. */
  readonly userAgent?: string;
}

export interface TakeOptions {
  /** Seconds to wait in line; 0 (the default) answers at once. */
  readonly waitSeconds?: number;
  /** The hold's time-to-live in seconds: unrenewed that long, the controller expires it. */
  readonly ttlSeconds?: number;
  readonly signal?: AbortSignal;
}

interface RequestOptions {
  readonly query?: Record<string, string | number | undefined>;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly signal?: AbortSignal | undefined;
}

/**
 * The service's HTTP API with the types of its OpenAPI document (generated from the document the
 * service serves as /openapi.json). Every refusal throws a RetrospectiveError with the service's
 * code; every answer is JSON.
 */
export class RetrospectiveClient {
  readonly url: string;

  constructor(readonly options: ClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
  }

  /** A lock's state (from the service's watch cache). */
  check(lock: string, signal?: AbortSignal): Promise<LockCheck> {
    return this.request('GET', `${lockPath(lock)}/check`, { signal });
  }

  /** A page of the locks you may view. */
  list(query: ListQuery = {}, signal?: AbortSignal): Promise<LockList> {
    return this.request('GET', '/locks', { query, signal });
  }

  /** Who you are and what you may do. */
  /** Who you are and what you may do; `locks` names the locks to ask about (required past 100). */
  me(signal?: AbortSignal, locks?: readonly string[]): Promise<Me> {
    const query = locks ? { locks: locks.join(',') } : undefined;
    return this.request('GET', '/api/me', { signal, ...(query ? { query } : {}) });
  }

  /** The last releases of a lock, oldest first. */
  history(lock: string, query: HistoryQuery = {}, signal?: AbortSignal): Promise<History> {
    return this.request('GET', `${lockPath(lock)}/history`, { query, signal });
  }

  /**
   * One avail: granted, renewed (you hold it already), or a RetrospectiveError (`locked`,
   * `queued` with Retry-After) once `wait` runs out. The service cuts `wait` to its
   * WAIT_MAX_SECONDS; take() asks again for longer waits. With `token`, only renews the hold
   * granted with it (refused once it ended; never a new grant).
   */
  avail(
    lock: string,
    query: AvailQuery = {},
    signal?: AbortSignal,
    token?: number,
  ): Promise<Grant> {
    return this.request('POST', `${lockPath(lock)}/avail`, {
      query,
      headers: ifMatch(token),
      signal,
    });
  }

  /**
   * Takes the lock, waiting in line up to `waitSeconds` (asking again when the service's own
   * limit on one wait runs out: each new ask joins at the end of the line). Throws the last
   * refusal (`locked`, `queued`) when the time runs out.
   */
  async take(lock: string, options: TakeOptions = {}): Promise<Grant> {
    const deadline = Date.now() + (options.waitSeconds ?? 0) * 1000;
    for (;;) {
      // The service cuts one wait to its WAIT_MAX_SECONDS; an hour per ask is plenty.
      const left = Math.min(3600, Math.max(0, Math.ceil((deadline - Date.now()) / 1000)));
      const asked = Date.now();
      let grant: Grant;
      try {
        grant = await this.avail(lock, { wait: left, ttl: options.ttlSeconds }, options.signal);
      } catch (error) {
        const again =
          error instanceof RetrospectiveError &&
          ['locked', 'queued', 'queue_full', 'shutting_down'].includes(error.code) &&
          Date.now() < deadline - 1000;
        if (!again) throw error;
        // Answered without waiting (a full line, a replica going away, a lock that lets no one
        // wait): ask again after Retry-After, never in a tight loop.
        if (Date.now() - asked < 1000)
          await sleep(
            Math.min((error.retryAfter ?? 1) * 1000, deadline - Date.now()),
            options.signal,
          );
        continue;
      }
      // `renewed`: the same identity holds the lock already, through another client. Two clients
      // sharing one hold would both think they hold it alone.
      if (grant.status !== 'granted')
        throw new RetrospectiveError(
          409,
          'already_held',
          `${grant.holder} already holds ${lock} (token ${String(grant.token)}) through another client; give each client its own identity (--user in header mode, its own ServiceAccount otherwise).`,
        );
      return grant;
    }
  }

  /** Takes the lock and keeps it: renewed in the background, released by `hold.release()`. */
  async hold(lock: string, options: TakeOptions & HoldOptions = {}): Promise<Hold> {
    const grant = await this.take(lock, options);
    return new Hold(this, lock, grant, options);
  }

  /** Replaces the content (holder only); `token` pins the hold (412 `stale_token` otherwise). */
  change(lock: string, content: string, token?: number, signal?: AbortSignal): Promise<Mutation> {
    return this.request('POST', `${lockPath(lock)}/change`, {
      headers: { 'Content-Type': 'application/json', ...ifMatch(token) },
      // As JSON: an empty text body would be no content at all.
      body: JSON.stringify({ retrospective: content }),
      signal,
    });
  }

  /**
   * Releases the lock; with `content`, writes it and releases in one update. `force` releases
   * anyone's hold (an admin's right).
   */
  release(
    lock: string,
    options: { token?: number; content?: string; force?: boolean; signal?: AbortSignal } = {},
  ): Promise<Mutation> {
    const content = options.content;
    return this.request('POST', `${lockPath(lock)}/release`, {
      query: { force: options.force ? 'true' : undefined },
      headers: {
        ...ifMatch(options.token),
        ...(content === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      ...(content === undefined ? {} : { body: JSON.stringify({ retrospective: content }) }),
      signal: options.signal,
    });
  }

  /** Frames of the locks asked for (all you may view by default), resumed across reconnects. */
  watch(options: WatchOptions): Watch {
    return watch(this.url, this.options.credentials, options);
  }

  private async request<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const url = new URL(this.url + path);
    for (const [key, value] of Object.entries(options.query ?? {}))
      if (value !== undefined) url.searchParams.set(key, String(value));
    const headers = {
      Accept: 'application/json',
      'User-Agent': this.options.userAgent ?? 'retrospective-client',
      ...(await this.options.credentials.headers()),
      ...options.headers,
    };
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: options.body }),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
      throw new RetrospectiveError(
        0,
        'unreachable',
        `Could not reach ${this.url} (${cause instanceof Error ? cause.message : String(cause)}): check the URL (--url, RETROSPECTIVE_URL) and that the service runs.`,
      );
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (response.ok && body !== undefined) return body as T;
    const refusal = body as (Refusal & Record<string, unknown>) | undefined;
    if (typeof refusal?.error === 'string' && typeof refusal.message === 'string') {
      const retry = Number(response.headers.get('Retry-After'));
      throw new RetrospectiveError(
        response.status,
        refusal.error,
        refusal.message,
        Number.isFinite(retry) && retry > 0 ? retry : undefined,
        refusal,
      );
    }
    throw new RetrospectiveError(
      response.status,
      'bad_answer',
      `${url.origin} answered ${response.status} without the service's JSON: is --url the retrospective service (not a proxy's page)?`,
    );
  }
}

const lockPath = (lock: string) => `/locks/${encodeURIComponent(lock)}`;
const ifMatch = (token: number | undefined): Record<string, string> =>
  token === undefined ? {} : { 'If-Match': String(token) };

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(
      () => {
        signal?.removeEventListener('abort', stop);
        resolve();
      },
      Math.max(0, ms),
    );
    const stop = () => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', stop, { once: true });
  });
}
