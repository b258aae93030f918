import type { Duplex } from 'node:stream';

const reasons: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** How long a peer we answered gets to read the answer and close, before we close on it. */
const lingerMs = 1000;

/** Refuses CR, LF and NUL: nothing may end a header line early or start a new one. */
function headerLine(line: string): string {
  if (/[\r\n\0]/.test(line)) throw new Error('a raw answer header line may not hold CR, LF or NUL');
  return line;
}

/**
 * Attaches an error listener to a socket the server now owns, first thing: Node takes its own off
 * a socket it hands to `upgrade`, and a client that resets the connection then raises ECONNRESET,
 * which with no listener ends the process.
 */
export function guardSocket(socket: Duplex): void {
  if (socket.listenerCount('error') === 0) socket.on('error', () => socket.destroy());
}

/**
 * Answers on a raw socket (an upgrade that is refused, a request the HTTP parser refused): the only
 * place such answers are built. The status line comes from a fixed table and header values from
 * the server (a line with CR, LF or NUL throws); the body's control characters are replaced, so no
 * client byte can start a header. The connection is closed after the answer.
 */
export function rawAnswer(
  socket: Duplex,
  status: number,
  body: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  guardSocket(socket);
  // eslint-disable-next-line no-control-regex -- control characters are what is replaced
  const text = `${body.replace(/[\u0000-\u0008\u000B-\u001F\u007F]/g, '?')}\n`;
  const head = [
    `HTTP/1.1 ${status} ${reasons[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(text)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ].map(headerLine);
  if (socket.writable) socket.end(`${head.join('\r\n')}\r\n\r\n${text}`);
  // A peer that neither reads nor closes is cut off rather than kept.
  setTimeout(() => socket.destroy(), lingerMs).unref();
}
