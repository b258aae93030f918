import type { NextFunction, Request, Response } from 'express';
import { HttpError } from '../errors.js';

/** Content types the change route reads from a body, and how large each may be. */
export interface BodyLimits {
  readonly text: number;
  readonly json: number;
}

/** The charset a Content-Type names, lower-cased, if any. */
export function charsetOf(contentType: string | undefined): string | undefined {
  const match = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? '');
  return match?.[1]?.toLowerCase();
}

/**
 * Reads a request body into `req.body` as a Buffer, refusing early instead of reading to the
 * end: a declared or received size over the limit answers 413 at once (the error handler closes
 * the connection, so nothing more is read), and any Content-Encoding answers 415 (bodies are
 * small; compressed ones are not worth a decompression bomb). Requests with no body pass through.
 */
export function readBody(limits: BodyLimits) {
  return (req: Request, _res: Response, next: NextFunction) => {
    const length = req.headers['content-length'];
    if (length === undefined && req.headers['transfer-encoding'] === undefined) return next();
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.toLowerCase() !== 'identity')
      return next(
        new HttpError(
          415,
          'unsupported_encoding',
          'Send the body uncompressed (no Content-Encoding).',
        ),
      );
    const limit = req.is('application/json') ? limits.json : limits.text;
    const tooLarge = () =>
      new HttpError(413, 'body_too_large', `The request body is over ${limit} bytes.`);
    if (length !== undefined && Number(length) > limit) return next(tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    const finish = (error?: unknown) => {
      if (finished) return;
      finished = true;
      req.off('data', onData);
      if (error) {
        req.pause();
        return next(error);
      }
      req.body = Buffer.concat(chunks);
      next();
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) finish(tooLarge());
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish());
    req.once('error', (error) => finish(error));
  };
}
