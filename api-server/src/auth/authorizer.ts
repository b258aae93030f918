import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { HttpError } from '../errors.js';
import { readUsername } from '../validate.js';
import { clientAddress } from './origin.js';
import { RateLimiter } from './rate-limit.js';
import { SampledLog } from '@retrospective/runtime';

/** What a caller may do to one lock. */
export type Permission = 'view' | 'hold' | 'force-release';

/**
 * The verb each permission is checked as on the lock's Lease (coordination.k8s.io). Holding is a
 * verb of its own, not `update`: a Role that lets a user take the lock through the service must not
 * also let them rewrite the Lease with kubectl, past the fencing tokens (ADR 9).
 */
export const leaseVerbs: Record<Permission, string> = {
  view: 'get',
  hold: 'hold',
  'force-release': 'force-release',
};

export interface Identity {
  readonly user: string;
  readonly groups: readonly string[];
  /** From a TokenReview: passed on to SubjectAccessReviews, as the API server itself would. */
  readonly uid?: string | undefined;
  readonly extra?: Readonly<Record<string, readonly string[]>> | undefined;
}

/** TokenReview and SubjectAccessReview: the Kubernetes API in production, a double in unit tests. */
export interface Reviewer {
  /** The token's user, or undefined when the API server does not accept it. */
  reviewToken(token: string): Promise<Identity | undefined>;
  /** Whether `who` may `verb` the Lease `lease` in the service's namespace. */
  mayAccess(who: Identity, verb: string, lease: string): Promise<boolean>;
}

/** The WebSocket subprotocol the view speaks; a server never echoes the token protocol. */
export const wsProtocol = 'retrospective.v1';
/** Kubernetes' own way to carry a bearer token in a browser's WebSocket handshake. */
export const bearerProtocolPrefix = 'base64url.bearer.authorization.k8s.io.';
/** Longer than any service account or OIDC token, short enough to bound the work per request. */
const maxTokenBytes = 16 * 1024;

/** How a check may use cached answers (an open socket is checked again on fresher ones). */
export interface Freshness {
  readonly maxAgeMs?: number | undefined;
  /**
   * The token was accepted before (an open socket's): reviewing it again is not charged to the
   * client address's limit on reviews of unknown tokens.
   */
  readonly known?: boolean | undefined;
}

export interface Authorizer {
  readonly mode: Config['AUTH_MODE'];
  /**
   * Who sends `req`: 401 without valid credentials in kubernetes mode. In header mode a view needs
   * no name (undefined), anything else needs a valid name header (400 as in the seed).
   */
  identify(
    req: IncomingMessage,
    permission: Permission,
    freshness?: Freshness,
  ): Promise<Identity | undefined>;
  /** Throws 403 unless `who` has `permission` on `lock`. */
  authorize(who: Identity | undefined, permission: Permission, lock: string): Promise<void>;
  /** Whether `who` has `permission` on `lock`, without throwing (for the view's buttons). */
  allowed(
    who: Identity | undefined,
    permission: Permission,
    lock: string,
    freshness?: Freshness,
  ): Promise<boolean>;
}

const forbidden = (who: Identity | undefined, permission: Permission, lock: string) =>
  new HttpError(
    403,
    'forbidden',
    `${who?.user ?? 'An anonymous caller'} may not ${permission === 'view' ? 'view' : permission === 'hold' ? 'take or edit' : 'force-release'} lock "${lock}".`,
  );

/** `AUTH_MODE=header`: the name header is trusted (it must come from an authenticating proxy). */
export function headerAuthorizer(config: Pick<Config, 'USERNAME_HEADER' | 'ADMIN_USERS'>) {
  const admins = new Set(config.ADMIN_USERS);
  const allowed = async (who: Identity | undefined, permission: Permission) =>
    permission !== 'force-release' || (who !== undefined && admins.has(who.user));
  return {
    mode: 'header',
    identify: async (req, permission) => {
      const read = (): Identity => ({
        user: readUsername(req, config.USERNAME_HEADER),
        groups: [],
      });
      if (permission !== 'view') return read();
      // Viewing needs no name; one that does not parse is ignored rather than refused.
      try {
        return read();
      } catch {
        return undefined;
      }
    },
    allowed,
    authorize: async (who, permission, lock) => {
      if (!(await allowed(who, permission))) throw forbidden(who, permission, lock);
    },
  } satisfies Authorizer;
}

/**
 * A time-bounded cache of answers (positive and negative) that also joins concurrent lookups of
 * one key. Failed lookups are not kept. At most `max` keys: the oldest go first.
 */
export class AnswerCache<V> {
  private readonly entries = new Map<
    string,
    { value: Promise<V>; loaded: number; expires: number }
  >();

  constructor(
    private readonly ttlMs: number,
    private readonly max = 10_000,
    private readonly now = () => performance.now(),
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The cached answer, if there is one that has not expired and is at most `maxAgeMs` old. */
  peek(key: string, maxAgeMs = Infinity): Promise<V> | undefined {
    const hit = this.entries.get(key);
    const now = this.now();
    if (hit && hit.expires > now && now - hit.loaded < maxAgeMs) return hit.value;
    return undefined;
  }

  get(key: string, load: () => Promise<V>, maxAgeMs?: number): Promise<V> {
    const hit = this.peek(key, maxAgeMs);
    if (hit) return hit;
    const value = load();
    this.set(key, value);
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    return value;
  }

  set(key: string, value: Promise<V>): void {
    this.entries.delete(key);
    const oldest = this.entries.keys().next();
    if (this.entries.size >= this.max && !oldest.done) this.entries.delete(oldest.value);
    const now = this.now();
    this.entries.set(key, { value, loaded: now, expires: now + this.ttlMs });
  }
}

/**
 * Reviewed tokens, kept apart by answer: a flood of random tokens fills the small negative cache,
 * never evicting the identities of real users. Concurrent reviews of one token are joined.
 */
class TokenCache {
  private readonly accepted: AnswerCache<Identity>;
  private readonly refused: AnswerCache<undefined>;
  private readonly inFlight = new Map<string, Promise<Identity | undefined>>();

  /** Reviews waiting for the API server's answer. */
  get reviewing(): number {
    return this.inFlight.size;
  }

  constructor(ttlMs: number, now?: () => number) {
    this.accepted = new AnswerCache<Identity>(ttlMs, 10_000, now);
    // Refusals are kept briefly: long enough to absorb a retry loop, short enough to forget a typo.
    this.refused = new AnswerCache<undefined>(Math.min(ttlMs, 10_000), 1_000, now);
  }

  /** The cached or in-flight answer for `key`, if any (at most `maxAgeMs` old). */
  known(key: string, maxAgeMs?: number): Promise<Identity | undefined> | undefined {
    return (
      this.accepted.peek(key, maxAgeMs) ??
      this.refused.peek(key, maxAgeMs) ??
      this.inFlight.get(key)
    );
  }

  review(key: string, load: () => Promise<Identity | undefined>): Promise<Identity | undefined> {
    const answer = load();
    this.inFlight.set(key, answer);
    answer.then(
      (who) => {
        this.inFlight.delete(key);
        if (who) this.accepted.set(key, Promise.resolve(who));
        else this.refused.set(key, Promise.resolve(undefined));
      },
      () => this.inFlight.delete(key),
    );
    return answer;
  }
}

/** TokenReviews one replica has waiting on the API server at most; more callers get 503. */
const maxReviewsInFlight = 64;

/** The longest user name a line entry or an annotation may carry (bytes, JSON-encoded). */
export const maxUserNameBytes = 256;

/** The bearer token of an HTTP request, or of a WebSocket handshake's subprotocol list. */
export function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer +([^\s]+) *$/i.exec(header);
    if (!match?.[1])
      throw new HttpError(401, 'unauthenticated', 'Send Authorization: Bearer <token>.', {
        'WWW-Authenticate': 'Bearer realm="retrospective"',
      });
    return match[1];
  }
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols === undefined) return undefined;
  const offered = protocols.split(',').map((p) => p.trim());
  const encoded = offered
    .find((p) => p.startsWith(bearerProtocolPrefix))
    ?.slice(bearerProtocolPrefix.length);
  return encoded ? Buffer.from(encoded, 'base64url').toString('utf8') : undefined;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * `AUTH_MODE=kubernetes`: a bearer token, reviewed by the API server (TokenReview), and one
 * SubjectAccessReview per permission and lock. Answers are cached for AUTH_CACHE_SECONDS, which
 * bounds how long a deleted token or a revoked binding still works. Tokens are kept only hashed.
 * A client address may have only so many tokens reviewed a minute (those not cached): a flood of
 * made-up tokens is refused with 429 before it reaches the API server.
 */
export function kubernetesAuthorizer(
  config: Pick<
    Config,
    'AUTH_CACHE_SECONDS' | 'AUTH_REVIEWS_PER_ADDRESS_PER_MINUTE' | 'TRUSTED_PROXY_HOPS'
  >,
  reviewer: Reviewer,
  logger: Logger,
  now?: () => number,
) {
  const ttl = config.AUTH_CACHE_SECONDS * 1000;
  const tokens = new TokenCache(ttl, now);
  const access = new AnswerCache<boolean>(ttl, 50_000, now);
  const reviews = new RateLimiter(config.AUTH_REVIEWS_PER_ADDRESS_PER_MINUTE, 100_000, now);
  const failures = new SampledLog(logger, 60_000, now);
  /** The API server could not answer: 503, never a guess in either direction. */
  const unavailable = (what: string) => (error: unknown) => {
    failures.warn(`${what} failed`, { err: error });
    throw new HttpError(
      503,
      'auth_unavailable',
      'Cannot check your credentials right now; try again shortly.',
      { 'Retry-After': '2' },
    );
  };
  const unauthenticated = (message: string) =>
    new HttpError(401, 'unauthenticated', message, {
      'WWW-Authenticate': 'Bearer realm="retrospective"',
    });
  const allowed = async (
    who: Identity | undefined,
    permission: Permission,
    lock: string,
    freshness: Freshness = {},
  ) => {
    if (!who) return false;
    const verb = leaseVerbs[permission];
    const key = JSON.stringify([who.user, who.groups, who.uid, who.extra, verb, lock]);
    return access
      .get(key, () => reviewer.mayAccess(who, verb, lock), freshness.maxAgeMs)
      .catch(unavailable('SubjectAccessReview'));
  };
  return {
    mode: 'kubernetes',
    identify: async (req, _permission, freshness = {}) => {
      const token = bearerToken(req);
      if (!token) throw unauthenticated('Send Authorization: Bearer <token>.');
      if (Buffer.byteLength(token) > maxTokenBytes)
        throw unauthenticated('The bearer token is too long.');
      const key = sha256(token);
      let answer = tokens.known(key, freshness.maxAgeMs);
      if (!answer) {
        const wait = freshness.known
          ? 0
          : reviews.take(clientAddress(req, config.TRUSTED_PROXY_HOPS));
        if (wait > 0)
          throw new HttpError(
            429,
            'rate_limited',
            `Too many unknown tokens from this address; try again in ${wait} s.`,
            { 'Retry-After': String(wait) },
          );
        // However many addresses a flood comes from, only so many reviews wait on the API server
        // (re-checks of open sockets, paced by their own schedule, are not refused for it).
        if (!freshness.known && tokens.reviewing >= maxReviewsInFlight)
          throw new HttpError(
            503,
            'auth_unavailable',
            'Too many credentials are being checked right now; try again shortly.',
            { 'Retry-After': '1' },
          );
        answer = tokens.review(key, () => reviewer.reviewToken(token));
      }
      const who = await answer.catch(unavailable('TokenReview'));
      if (!who)
        throw unauthenticated('The bearer token is not valid (expired, revoked or unknown).');
      if (Buffer.byteLength(JSON.stringify(who.user)) - 2 > maxUserNameBytes)
        throw new HttpError(
          403,
          'user_name_too_long',
          `Your user name is longer than ${maxUserNameBytes} bytes, more than a lock can record.`,
        );
      return who;
    },
    allowed,
    authorize: async (who, permission, lock) => {
      if (!(await allowed(who, permission, lock))) throw forbidden(who, permission, lock);
    },
  } satisfies Authorizer;
}
