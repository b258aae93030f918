import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';

const requestIdSyntax = /^[A-Za-z0-9._-]{1,64}$/;

/** The caller's X-Request-Id when it is a sane one, else a new id. */
export function requestIdOf(incoming: string | string[] | undefined): string {
  return typeof incoming === 'string' && requestIdSyntax.test(incoming) ? incoming : randomUUID();
}

/** The headers every answer of the API carries: its request id, no sniffing, no caching. */
export function answerHeaders(requestId: string): Record<string, string> {
  return {
    'X-Request-Id': requestId,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-store',
  };
}

/** JSON for clients that ask for it; a sentence for everyone else (curl users read it). */
export function wantsJson(req: Request): boolean {
  return req.accepts(['text/plain', 'application/json']) === 'application/json';
}

/**
 * Writes one answer without Express: the JSON, or the sentence ending in a newline, with the
 * headers Express's res.json and res.send would give it. The lock commands answer through it on
 * both paths (Express routes and fast-commands.ts).
 */
export function send(
  res: ServerResponse,
  status: number,
  json: boolean,
  body: object,
  text: string,
  headers: Record<string, string> = {},
): void {
  const payload = json ? JSON.stringify(body) : text.endsWith('\n') ? text : `${text}\n`;
  res.writeHead(status, {
    ...headers,
    'Content-Type': json ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload),
  });
  res.end(payload);
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
export function closeIfUnread(req: IncomingMessage): Record<string, string> {
  const length = req.headers['content-length'];
  const hasBody =
    (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
  return hasBody && !req.complete ? { Connection: 'close' } : {};
}
