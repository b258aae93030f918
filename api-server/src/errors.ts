import {
  LockInvalidError,
  LockNotProvisionedError,
  LockTooLargeError,
  StoreUnavailableError,
  UnknownLockError,
  type Refusal,
} from '@retrospective/lock';

/** An error with its HTTP answer: status, machine code, and a sentence safe to show anyone. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const badRequest = (code: string, message: string) => new HttpError(400, code, message);

/** The one place that maps failures to HTTP; anything unknown is a 500 that hides its details. */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  if (error instanceof UnknownLockError)
    return new HttpError(404, 'unknown_lock', error.message + '.');
  if (error instanceof LockNotProvisionedError)
    return new HttpError(503, 'not_provisioned', error.message + '.', { 'Retry-After': '5' });
  if (error instanceof StoreUnavailableError)
    return new HttpError(
      503,
      'store_unavailable',
      'The lock store is unavailable; try again shortly.',
      {
        'Retry-After': '2',
      },
    );
  if (error instanceof LockInvalidError)
    return new HttpError(
      503,
      'lock_invalid',
      "The Kubernetes API server refuses the lock's Lease as it is now, so nothing can be written to it; an operator must undo what else was changed in it (the api-server's log says what).",
    );
  if (error instanceof LockTooLargeError)
    return new HttpError(
      503,
      'lock_too_large',
      "The lock's Lease is over Kubernetes' size limit (256 KiB of annotations), so nothing can be written to it; an operator must remove what else was added to it.",
    );
  // The router refuses a path whose percent-escapes do not decode (`/locks/%ZZ/check`).
  if (error instanceof URIError)
    return badRequest('malformed_path', 'The path is not valid percent-encoded UTF-8.');
  return new HttpError(500, 'internal', 'Internal error.');
}

export const refusalStatus: Record<Refusal['code'], number> = {
  locked: 423,
  not_held: 409,
  stale_token: 412,
  superseded: 409,
  queued: 423,
  queue_full: 503,
  waiting_limit: 429,
};
