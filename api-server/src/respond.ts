import type { Request, Response } from 'express';

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
