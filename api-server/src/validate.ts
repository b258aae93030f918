import type { IncomingMessage } from 'node:http';
import type { Request } from 'express';
import { z } from 'zod';
import { charsetOf } from './http/body.js';
import { badRequest, HttpError } from './errors.js';

/** Letters, digits and . _ @ -, starting and ending with a letter or digit; at most 64. */
export const username = /^[A-Za-z0-9](?:[A-Za-z0-9._@-]{0,62}[A-Za-z0-9])?$/;
// Tab, LF and CR are text; every other C0 control, DEL and C1 control is refused in content.
// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/;

/**
 * The user's name, exactly as received: HTTP strips the spaces and tabs around a header value,
 * and nothing else is trimmed or decoded, so `alice\xa0` is refused rather than taken for alice.
 */
export function readUsername(req: IncomingMessage, header: string): string {
  const raw = req.headers[header.toLowerCase()];
  const name = Array.isArray(raw) ? raw.join(', ') : raw;
  if (name === undefined || name === '')
    throw badRequest('missing_username', `Send your name in the ${header} header.`);
  if (!username.test(name))
    throw badRequest(
      'invalid_username',
      `The ${header} header must be 1-64 letters, digits, dots, dashes, underscores or @, starting and ending with a letter or digit.`,
    );
  return name;
}

/** The fencing token from If-Match (`3` or `"3"`), when the client sent one. */
export function readIfMatch(req: IncomingMessage): number | undefined {
  const value = req.headers['if-match'];
  if (value === undefined) return undefined;
  const match = /^\s*"?(\d{1,15})"?\s*$/.exec(value);
  if (!match?.[1])
    throw badRequest(
      'invalid_token',
      'If-Match must carry the token you were granted, e.g. If-Match: 3.',
    );
  return Number(match[1]);
}

const jsonBody = z.object({ retrospective: z.string() });
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** HTTP header values arrive as latin1; curl sends UTF-8 bytes, so decode them as such. */
function headerText(value: string): string {
  try {
    return utf8.decode(Buffer.from(value, 'latin1'));
  } catch {
    throw badRequest('invalid_content', 'The Retrospective header is not valid UTF-8.');
  }
}

/** A body as UTF-8: a charset other than UTF-8 (or ASCII for text) is 415, invalid bytes 400. */
function bodyText(req: Request, body: Buffer, json: boolean): string {
  const charset = charsetOf(req.get('Content-Type'));
  const allowed = json ? ['utf-8', 'utf8'] : ['utf-8', 'utf8', 'us-ascii'];
  if (charset !== undefined && !allowed.includes(charset))
    throw new HttpError(415, 'unsupported_charset', 'Send the body as UTF-8.');
  try {
    return utf8.decode(body);
  } catch {
    throw badRequest('invalid_content', 'The request body is not valid UTF-8.');
  }
}

function jsonContent(text: string): string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest('malformed_json', 'The request body is not valid JSON.');
  }
  const parsed = jsonBody.safeParse(value);
  if (!parsed.success)
    throw badRequest('invalid_content', 'The JSON body must be {"retrospective": "<text>"}.');
  return parsed.data.retrospective;
}

/**
 * Whether a release carries content to write: the Retrospective header, a text body, or a JSON
 * body with a `retrospective` key. Anything else a release was sent with is ignored, as it
 * always was (`curl -d x` sends a form), so no client that released before is refused now.
 */
export function hasContent(req: Request): boolean {
  if (req.get('Retrospective') !== undefined) return true;
  const body: unknown = req.body;
  if (!Buffer.isBuffer(body)) return false;
  if (req.is('text/*')) return body.length > 0;
  if (!req.is('application/json')) return false;
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && 'retrospective' in value;
  } catch {
    return false;
  }
}

/** The new content: the seed's Retrospective header, else a text/plain or JSON body. */
export function readContent(req: Request, maxBytes: number): string {
  const header = req.get('Retrospective');
  const body: unknown = req.body;
  let content: string;
  if (header !== undefined) content = headerText(header);
  else if (Buffer.isBuffer(body) && body.length > 0 && req.is('application/json'))
    content = jsonContent(bodyText(req, body, true));
  else if (Buffer.isBuffer(body) && body.length > 0 && req.is('text/*'))
    content = bodyText(req, body, false);
  else if (Buffer.isBuffer(body) && body.length > 0)
    throw new HttpError(
      415,
      'unsupported_media_type',
      'Send the content as text/plain, as JSON, or in the Retrospective header.',
    );
  else
    throw badRequest(
      'missing_content',
      'Send the new content in the Retrospective header or the request body.',
    );
  const bytes = Buffer.byteLength(content, 'utf8');
  if (bytes > maxBytes)
    throw new HttpError(
      413,
      'content_too_large',
      `The content is ${bytes} bytes; the limit is ${maxBytes} bytes.`,
    );
  // A lone surrogate (possible in JSON's \u escapes) is not text either.
  if (!content.isWellFormed())
    throw badRequest('invalid_content', 'The content is not valid Unicode text.');
  if (controlCharacters.test(content))
    throw badRequest(
      'invalid_content',
      'The content may not contain control characters other than tab and newline.',
    );
  return content;
}
