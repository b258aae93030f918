import type { Request } from 'express';
import { z } from 'zod';
import { badRequest, HttpError } from './errors.js';

/** Letters, digits and . _ @ -, starting and ending with a letter or digit; at most 64. */
const username = /^[A-Za-z0-9](?:[A-Za-z0-9._@-]{0,62}[A-Za-z0-9])?$/;
// Tab, LF and CR are text; every other C0 control, DEL and C1 control is refused in content.
// eslint-disable-next-line no-control-regex
const controlCharacters = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/;

export function readUsername(req: Request, header: string): string {
  const value = req.get(header);
  if (value === undefined || value.trim() === '')
    throw badRequest('missing_username', `Send your name in the ${header} header.`);
  const name = value.trim();
  if (!username.test(name))
    throw badRequest(
      'invalid_username',
      `The ${header} header must be 1-64 letters, digits, dots, dashes, underscores or @, starting and ending with a letter or digit.`,
    );
  return name;
}

/** The fencing token from If-Match (`3` or `"3"`), when the client sent one. */
export function readIfMatch(req: Request): number | undefined {
  const value = req.get('If-Match');
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

/** The new content: the seed's Retrospective header, else a text/plain or JSON body. */
export function readContent(req: Request, maxBytes: number): string {
  const header = req.get('Retrospective');
  let content: string;
  if (header !== undefined) content = headerText(header);
  else if (typeof req.body === 'string') content = req.body;
  else if (req.is('application/json')) {
    const parsed = jsonBody.safeParse(req.body);
    if (!parsed.success)
      throw badRequest('invalid_content', 'The JSON body must be {"retrospective": "<text>"}.');
    content = parsed.data.retrospective;
  } else if (req.is('*/*'))
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
  if (controlCharacters.test(content))
    throw badRequest(
      'invalid_content',
      'The content may not contain control characters other than tab and newline.',
    );
  return content;
}
