import type { Logger } from 'pino';
import {
  isHeld,
  type Command,
  type LockPolicy,
  type LockService,
  type LockState,
  type MutationResult,
} from '@retrospective/lock';
import { SampledLog } from '@retrospective/runtime';
import type { Authorizer, Identity, Permission } from '../auth/authorizer.js';
import type { OriginVerdict } from '../auth/origin.js';
import { overLimit, type RateLimiter } from '../auth/rate-limit.js';
import { refusalStatus } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { checkBody, checkText, describeRefusal, retryAfter, title } from '../present.js';
import { isRefused, refused, refusedBy, type Refused } from './refused.js';
import type { WaitingRoom } from './waiting-room.js';

export type Verb = 'check' | 'avail' | 'change' | 'release';

/** The inputs of a command, read only once the caller is known to be allowed to send it. */
export interface CommandInput {
  /** avail: seconds to wait in line (cut to WAIT_MAX_SECONDS). */
  readonly wait?: number | undefined;
  /**
   * avail: the hold's time-to-live in seconds: a hold its holder does not renew (avail, change)
   * within it is expired by the controller. Bounded by the lock's `maxHoldSeconds`.
   */
  readonly ttl?: number | undefined;
  /** change, release: the fencing token the caller was granted. */
  readonly ifMatch?: number | undefined;
  /** change: the new content; release: content written in the releasing update, if any. */
  readonly content?: string | undefined;
}

/** One command as a transport hands it over. Functions may throw an HttpError (bad input). */
export interface CommandRequest {
  readonly transport: 'http' | 'ws';
  readonly verb: Verb;
  readonly lock: string;
  /** release?force=true: an admin's release of someone else's hold. */
  readonly force: () => boolean;
  /** Who sends it, checked for the permission the command needs (401, or 400 without a name). */
  readonly identify: (permission: Permission) => Promise<Identity | undefined>;
  readonly origin: OriginVerdict;
  /** The client's address, for the per-address limit. */
  readonly address: string;
  readonly requestId: string;
  readonly input: () => CommandInput;
  /** Aborted when the client goes away: it is then never put in line nor granted anything. */
  readonly signal: AbortSignal;
}

export interface Done {
  readonly ok: true;
  /** granted, renewed, updated, released, forced; held or available for check. */
  readonly outcome: string;
  readonly state: LockState;
  /** The token the answer is about: the grant's, or the released hold's. */
  readonly token: number;
  /** The JSON answer, and the sentence for those who did not ask for JSON. */
  readonly body: Record<string, unknown>;
  readonly text: string;
}

export type Answer = Done | Refused;

export interface PipelineDeps {
  readonly service: LockService;
  readonly room: WaitingRoom;
  readonly auth: Authorizer;
  /** Mutations per user and per client address. */
  readonly limits: { readonly user: RateLimiter; readonly address: RateLimiter };
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: () => Date;
  /** A served lock's policy (the environment's, or its `Lock`'s spec). */
  readonly policy: (lock: string) => LockPolicy;
}

/** The `lock` label of requests for locks that are not configured: one series, however many names. */
export const unknownLockLabel = '_unknown';

const permissionFor = (verb: Verb, force: boolean): Permission =>
  verb === 'check' ? 'view' : verb === 'release' && force ? 'force-release' : 'hold';

/** The token of the hold a release ended: one below the state's when it was handed on at once. */
const releasedToken = (state: LockState) => (isHeld(state) ? state.token - 1 : state.token);

const grantBody = (state: LockState, status: string) => ({
  lock: state.name,
  status,
  holder: state.holder,
  since: state.acquiredAt?.toISOString(),
  token: state.token,
});

/**
 * Every lock command, whichever transport brought it, goes through the same stages: identify,
 * known lock, origin, authorize, limit, execute, then metrics and the audit line. Expected "no"s
 * are values (Refused), so HTTP and WebSocket are thin adapters and a rule added here holds on
 * both.
 */
export class CommandPipeline {
  /** A lock its store refuses to write is an operator's job: said in the log, once a minute. */
  private readonly unwritable: SampledLog;

  constructor(private readonly deps: PipelineDeps) {
    this.unwritable = new SampledLog(deps.logger);
  }

  async run(request: CommandRequest): Promise<Answer> {
    const { service, metrics, logger } = this.deps;
    const { lock, verb } = request;
    let answer: Answer;
    let user: string | undefined;
    let failure: unknown;
    try {
      answer = await this.stages(request, (who) => (user = who?.user));
    } catch (error) {
      answer = refusedBy(error);
      failure = error;
      if (answer.code === 'internal')
        logger.error({ err: error, requestId: request.requestId, lock }, 'command failed');
    }
    // Thrown by the command, or the answer of a wait whose line write failed so: per lock.
    if (!answer.ok && (answer.code === 'lock_too_large' || answer.code === 'lock_invalid'))
      this.unwritable.warn(
        'the lock cannot be written',
        { lock, code: answer.code, ...(failure === undefined ? {} : { err: failure }) },
        `${lock}/${answer.code}`,
      );
    const outcome = answer.ok ? answer.outcome : answer.code;
    const label = service.has(lock) ? lock : unknownLockLabel;
    metrics.lockRequests.inc({ lock: label, action: verb, outcome });
    if (!answer.ok && (answer.status === 401 || answer.status === 403))
      metrics.authRefusals.inc({ reason: answer.code });
    if (verb !== 'check') this.audit(request, user, answer);
    return answer;
  }

  private async stages(
    request: CommandRequest,
    identified: (who: Identity | undefined) => void,
  ): Promise<Answer> {
    const { service, auth, limits, metrics } = this.deps;
    const { lock } = request;
    const permission = permissionFor(request.verb, request.force());
    const who = await request.identify(permission);
    identified(who);
    if (!service.has(lock))
      return refused(404, 'unknown_lock', `There is no lock named "${lock}".`);
    if (permission !== 'view' && request.origin === 'forbidden_origin')
      return refused(
        403,
        'forbidden_origin',
        "Browsers may change locks only from the service's own pages or ALLOWED_ORIGINS.",
      );
    if (permission !== 'view' && request.origin === 'cross_site')
      return refused(
        403,
        'forbidden_cross_site',
        'A page of another site may not change locks (Sec-Fetch-Site: cross-site).',
      );
    await auth.authorize(who, permission, lock);
    if (permission !== 'view' && who) {
      const limited = (scope: 'user' | 'address') => metrics.rateLimited.inc({ scope });
      const over =
        overLimit(limits.address, request.address, 'address', limited) ??
        overLimit(limits.user, who.user, 'user', limited);
      if (over) return over;
    }
    // The client left while its credentials were checked: it is answered nothing, and gets nothing.
    if (request.signal.aborted)
      return refused(499, 'client_gone', 'The client went away before the command ran.');
    return this.execute(request, who?.user ?? '');
  }

  private async execute(request: CommandRequest, user: string): Promise<Answer> {
    const { service, room, clock } = this.deps;
    const { lock, verb } = request;
    if (verb === 'check') {
      const state = service.state(lock);
      const now = clock();
      const outcome = state.holder ? 'held' : 'available';
      const body = checkBody(state, now, service.liveQueue(state));
      return { ok: true, outcome, state, token: state.token, body, text: checkText(state, now) };
    }
    const input = request.input();
    if (verb === 'avail') {
      const policy = this.deps.policy(lock);
      const ttlRefused = ttlRefusal(input.ttl, policy);
      if (ttlRefused) return ttlRefused;
      const holdTimeoutSeconds = input.ttl ?? policy.holdTimeoutSeconds;
      if (input.ifMatch !== undefined) {
        // A renewal pinned to a hold: answered at once (renewed, or refused), never a new grant.
        const command: Command = {
          kind: 'avail',
          user,
          holdTimeoutSeconds,
          ifMatch: input.ifMatch,
          claim: request.requestId,
        };
        return this.answer(
          lock,
          'avail',
          await service.execute(lock, command),
          input.ifMatch,
          (s) => ({
            outcome: 'renewed',
            body: grantBody(s, 'renewed'),
            text: `You already hold ${title(lock)}; hold renewed (token ${s.token}).`,
          }),
        );
      }
      const wait = Math.min(input.wait ?? 0, policy.waiting.maxSeconds);
      const result = await room.avail(lock, user, holdTimeoutSeconds, wait, request.signal);
      if (isRefused(result)) return result;
      return this.answer(lock, 'avail', result, undefined, (state, outcome) => {
        const status = outcome === 'renewed' ? 'renewed' : 'granted';
        const text =
          status === 'renewed'
            ? `You already hold ${title(lock)}; hold renewed (token ${state.token}).`
            : `Access to ${title(lock)} Granted to ${user} (token ${state.token}).`;
        return { outcome: status, body: grantBody(state, status), text };
      });
    }
    /** Runs a holder's command (change, release, force) and presents its success. */
    const run = async (command: Command, present: Parameters<typeof this.answer>[4]) =>
      this.answer(
        lock,
        command.kind === 'change' ? 'change' : 'release',
        await room.execute(lock, command),
        input.ifMatch,
        present,
      );
    if (verb === 'change') {
      const content = input.content ?? '';
      const bytes = Buffer.byteLength(content);
      const command: Command = { kind: 'change', user, content, ifMatch: input.ifMatch };
      return run(command, (s) => ({
        outcome: 'updated',
        body: { lock, status: 'updated', token: s.token, bytes },
        text: `${title(lock)} Updated (${bytes} bytes).`,
      }));
    }
    if (request.force()) {
      if (input.content !== undefined)
        return refused(
          400,
          'content_with_force',
          'A forced release cannot write content; release with force=true and no content.',
        );
      return run({ kind: 'force', by: user, ifMatch: input.ifMatch }, (s) => ({
        outcome: 'forced',
        body: { lock, status: 'released', reason: 'forced', token: releasedToken(s) },
        text: `${title(lock)} Released (forced by ${user}).`,
        token: releasedToken(s),
      }));
    }
    const content = input.content;
    return run({ kind: 'release', user, ifMatch: input.ifMatch, content }, (s) => {
      const bytes = content === undefined ? undefined : Buffer.byteLength(content);
      return {
        outcome: 'released',
        body: {
          lock,
          status: 'released',
          token: releasedToken(s),
          ...(bytes === undefined ? {} : { bytes }),
        },
        text:
          bytes === undefined
            ? `${title(lock)} Released.`
            : `${title(lock)} Updated (${bytes} bytes) and Released.`,
        token: releasedToken(s),
      };
    });
  }

  /** A store result as an answer: `present` for success, the refusal's status and sentence otherwise. */
  private answer(
    lock: string,
    action: 'avail' | 'change' | 'release',
    result: MutationResult,
    ifMatch: number | undefined,
    present: (
      state: LockState,
      outcome: string,
    ) => { outcome: string; body: Record<string, unknown>; text: string; token?: number },
  ): Answer {
    if (result.ok)
      return {
        ok: true,
        state: result.state,
        token: result.state.token,
        ...present(result.state, result.outcome),
      };
    const { refusal } = result;
    if (result.raced) this.deps.metrics.lockRaces.inc({ lock, action });
    const { message, extra } = describeRefusal(refusal, ifMatch);
    const headers: Record<string, string> = {};
    if (refusal.code === 'locked')
      headers['Retry-After'] = String(retryAfter(refusal.state, this.deps.clock()));
    if (['queued', 'queue_full', 'waiting_limit'].includes(refusal.code))
      headers['Retry-After'] = '5';
    return refused(refusalStatus[refusal.code], refusal.code, message, headers, extra);
  }

  /** One line per mutation, with the same keys for both transports. */
  private audit(request: CommandRequest, user: string | undefined, answer: Answer): void {
    const fields = {
      requestId: request.requestId,
      transport: request.transport,
      lock: request.lock,
      user,
      action:
        request.verb === 'release' && answer.ok && answer.outcome === 'forced'
          ? 'force'
          : request.verb,
      outcome: answer.ok ? answer.outcome : answer.code,
      token: answer.ok ? answer.state.token : undefined,
    };
    if (!answer.ok) this.deps.logger.debug(fields, 'lock command refused');
    else if (answer.outcome === 'forced') this.deps.logger.warn(fields, 'lock command');
    else this.deps.logger.info(fields, 'lock command');
  }
}

/** The longest time-to-live a client may ask for when its lock sets no bound: a week. */
export const maxTtlSeconds = 7 * 24 * 3600;

/**
 * A `ttl` over the lock's `maxHoldSeconds` is refused, not cut. Without one, a lock with a hold
 * timeout bounds it by that timeout (a client may ask to be expired sooner, never later than the
 * operator set), and a lock with neither by a week.
 */
function ttlRefusal(ttl: number | undefined, policy: LockPolicy): Refused | undefined {
  if (ttl === undefined) return undefined;
  const max = policy.maxHoldSeconds || policy.holdTimeoutSeconds || maxTtlSeconds;
  if (ttl <= max) return undefined;
  return refused(
    400,
    'invalid_ttl',
    `This lock allows a time-to-live of at most ${max} seconds; ask for ttl=${max} or less.`,
  );
}
