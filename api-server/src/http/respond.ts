import { randomUUID } from 'node:crypto';
import type { Request, Response } from 'express';

const requestIdSyntax = /^[A-Za-z0-9._-]{1,64}$/;

/** The caller's X-Request-Id when it is a sane one, else a new id. */
export function requestIdOf(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && requestIdSyntax.test(incoming) ? incoming : randomUUID();
}

/** JSON for clients that ask for it; a sentence for everyone else (curl users read it). */
export function wantsJson(req: Request): boolean {
  return req.accepts(['text/plain', 'application/json']) === 'application/json';
}

export function reply(
  req: Request,
  res: Response,
  status: number,
  json: object,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.status(status).set(headers);
  if (wantsJson(req)) res.json(json);
  else res.type('text/plain; charset=utf-8').send(text.endsWith('\n') ? text : `${text}\n`);
}

/**
 * `Connection: close` when answering before the request's body was read (too large, refused
 * early): the rest is not worth reading just to keep the connection. Nothing for a request without
 * a body, whatever the parser's progress.
 */
export function closeIfUnread(req: Request): Record<string, string> {
  const length = req.headers['content-length'];
  const hasBody =
    (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
  return hasBody && !req.complete ? { Connection: 'close' } : {};
}
