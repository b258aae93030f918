import { toHttpError } from '../errors.js';

/**
 * A command's expected "no" (Wait, not yours, too many, not allowed), as a value both transports
 * turn into their own answer: an HTTP status and body, or a WebSocket `reply` frame.
 */
export interface Refused {
  readonly ok: false;
  readonly status: number;
  /** Machine code, as in every refusal body (`error`). */
  readonly code: string;
  /** A sentence safe to show anyone. */
  readonly message: string;
  readonly headers: Readonly<Record<string, string>>;
  /** More JSON fields for the body (holder, since, token...). */
  readonly extra: Readonly<Record<string, unknown>>;
}

export function refused(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): Refused {
  return { ok: false, status, code, message, headers, extra };
}

/** The refusal an error stands for (an HttpError from a parser or an authorizer, a store failure). */
export function refusedBy(error: unknown): Refused {
  const http = toHttpError(error);
  return refused(http.status, http.code, http.message, http.headers, http.extra);
}

/** Whether a result is a Refused (a waiting room's answer may be one, or a store result). */
export const isRefused = (value: object): value is Refused =>
  'status' in value && typeof value.status === 'number';
