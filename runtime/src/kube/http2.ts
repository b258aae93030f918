import {
  connect,
  constants,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from 'node:http2';
import { StringDecoder } from 'node:string_decoder';
import type { KubeConfig } from '@kubernetes/client-node';

/** An answer's body as json-request.ts reads it, whichever client brought it. */
export interface AnswerBody extends AsyncIterable<Buffer | string> {
  setEncoding(encoding: 'utf8'): unknown;
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
}

/** An answer as json-request.ts reads it, whichever client brought it. */
export interface Answer {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: AnswerBody;
}

export interface Http2Request {
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body?: string | Buffer | undefined;
  readonly signal: AbortSignal;
}

export interface Http2Options {
  /** New streams go on a new session after this many on one (a client has 2^30 stream ids). */
  readonly streamsPerSession?: number;
  /** A session not connected after this long is dropped (its streams fail). */
  readonly connectTimeoutMs?: number;
  /** After a call gave up on an answer, a session whose PING is not answered in this long is dropped. */
  readonly pingTimeoutMs?: number;
}

/** Thrown when the server turned HTTP/2 down before anything was sent: the caller goes through undici. */
export class Http2Refused extends Error {}

/** A stream the server refused unprocessed (RFC 9113 8.7): safe to send again. */
class Refused extends Error {}

/** Headers HTTP/2 forbids (RFC 9113 8.2.2): a custom authenticator's are left out, not fatal. */
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
]);

/** At most this many streams at once on one session (kube-apiserver allows 100; one kept spare). */
const streamsAtOnce = 99;

/** One session of a connection, and what it carries. */
interface Live {
  readonly session: ClientHttp2Session;
  /** Streams open on it now: it keeps the process alive only while there are some. */
  open: number;
  /** Streams begun on it. */
  begun: number;
  /** No new streams: it was closed, GOAWAY'd, used up, or found dead. */
  retired: boolean;
  /** Its TLS handshake did not choose `h2`. */
  refused: boolean;
  /** A PING is in flight. */
  pinging: boolean;
}

/**
 * HTTP/2 sessions to one API server, with the kubeconfig's TLS settings, for the calls made on
 * every hand-over (the Lease update, the Lease watch, reads and lists): node's own HTTP/2 client
 * costs a replica about a quarter less CPU per hand-over than client-node's undici (ADR 17).
 * Streams share a session up to `streamsAtOnce`; more open another. A session closed by the
 * server, GOAWAY'd or used up takes no new streams (those on it finish there); one that does not
 * connect in time, or does not answer a PING after a call gave up waiting on it, is dropped. A
 * stream the server refused unprocessed is sent once more on another session. A server whose TLS
 * does not choose `h2` makes `request` throw Http2Refused before anything was sent.
 */
export class Http2Connection {
  private readonly lives: Live[] = [];
  private readonly streamsPerSession: number;
  private readonly connectTimeoutMs: number;
  private readonly pingTimeoutMs: number;

  constructor(
    private readonly origin: string,
    private readonly tls: SecureClientSessionOptions,
    options: Http2Options = {},
  ) {
    this.streamsPerSession = options.streamsPerSession ?? 1_000_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.pingTimeoutMs = options.pingTimeoutMs ?? 5_000;
  }

  /** Sessions that take new streams now (for tests). */
  get sessions(): number {
    return this.lives.filter((l) => !l.retired && !l.session.closed && !l.session.destroyed).length;
  }

  close(): void {
    for (const live of this.lives.splice(0)) live.session.close();
  }

  async request(path: string, req: Http2Request): Promise<Answer> {
    const headers: OutgoingHttpHeaders = { ':method': req.method, ':path': path };
    for (const [name, value] of Object.entries(req.headers)) {
      const key = name.toLowerCase();
      if (!hopByHop.has(key) && (key !== 'te' || value === 'trailers')) headers[key] = value;
    }
    if (req.body !== undefined) headers['content-length'] = Buffer.byteLength(req.body);
    try {
      return await this.attempt(headers, req);
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      return this.attempt(headers, req);
    }
  }

  private attempt(headers: OutgoingHttpHeaders, req: Http2Request): Promise<Answer> {
    req.signal.throwIfAborted();
    const live = this.pick();
    live.begun++;
    const stream = live.session.request(headers, { endStream: req.body === undefined });
    // Its failures reach whoever waits on it (the answer, then its body): never the process.
    stream.on('error', () => undefined);
    if (live.open++ === 0) live.session.ref();
    let answered = false;
    const abort = () => {
      // Gave up waiting: is the connection still there?
      if (!answered || !stream.readableEnded) this.check(live);
      stream.close(constants.NGHTTP2_CANCEL);
      stream.destroy(req.signal.reason as Error);
    };
    req.signal.addEventListener('abort', abort, { once: true });
    stream.once('close', () => {
      req.signal.removeEventListener('abort', abort);
      if (--live.open === 0) live.session.unref();
    });
    if (req.body !== undefined) stream.end(req.body);
    return new Promise<Answer>((resolve, reject) => {
      const failed = (error: Error) => {
        if (answered) return;
        answered = true;
        reject(this.refusal(error, live, stream));
      };
      stream.once('response', (response: IncomingHttpHeaders) => {
        if (answered) return;
        answered = true;
        const { ':status': status, ...rest } = response;
        resolve({ statusCode: Number(status), headers: rest, body: new Body(stream) });
      });
      stream.once('error', failed);
      stream.once('close', () => {
        if (!answered) failed(req.signal.aborted ? (req.signal.reason as Error) : closedEarly());
      });
    });
  }

  /** The error a stream failed with before its answer, as `request` reports it. */
  private refusal(error: Error, live: Live, stream: ClientHttp2Stream): Error {
    if (live.refused || noHttp2(error))
      return new Http2Refused(`the API server does not speak HTTP/2: ${String(error)}`, {
        cause: error,
      });
    if (stream.rstCode === constants.NGHTTP2_REFUSED_STREAM) {
      this.retire(live);
      return new Refused('the API server refused the stream unprocessed', { cause: error });
    }
    return error;
  }

  /** A session with room for one more stream: an open one, or a new one. */
  private pick(): Live {
    for (const live of this.lives) {
      const { session } = live;
      // A session being checked (see `check`) takes nothing new until it answered.
      if (live.retired || live.pinging || session.closed || session.destroyed) continue;
      if (live.begun >= this.streamsPerSession) {
        this.retire(live);
        continue;
      }
      const limit = Math.min(session.remoteSettings.maxConcurrentStreams ?? 100, streamsAtOnce);
      if (live.open < Math.max(1, limit)) return live;
    }
    return this.connect();
  }

  private connect(): Live {
    const session = connect(this.origin, {
      ...this.tls,
      settings: { enablePush: false, initialWindowSize: 4 * 1024 * 1024 },
    });
    const live: Live = {
      session,
      open: 0,
      begun: 0,
      retired: false,
      refused: false,
      pinging: false,
    };
    // Judged after the socket was read once more: a stalled event loop is not a slow server.
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (session.connecting)
            session.destroy(new Error('the API server did not connect in time'));
        }),
      this.connectTimeoutMs,
    );
    timer.unref();
    session.once('connect', () => {
      clearTimeout(timer);
      if (session.destroyed) return;
      if (session.alpnProtocol !== 'h2') {
        live.refused = true;
        session.destroy();
        return;
      }
      // Lists of many Leases come faster through a window wider than HTTP/2's 64 KiB.
      session.setLocalWindowSize(16 * 1024 * 1024);
    });
    const drop = () => {
      clearTimeout(timer);
      live.retired = true;
      const at = this.lives.indexOf(live);
      if (at >= 0) this.lives.splice(at, 1);
    };
    // Each stream hears of a failure itself; the session's own error only ends it.
    session.on('error', drop);
    session.on('close', drop);
    session.on('goaway', () => this.retire(live));
    session.unref();
    this.lives.push(live);
    return live;
  }

  /** No new streams on `live`; it closes once those on it have ended. */
  private retire(live: Live): void {
    live.retired = true;
    if (!live.session.closed) live.session.close();
  }

  /**
   * Drops `live` unless it answers a PING in time (after a call gave up waiting on it). A session
   * already closing is left to finish its streams: it cannot be pinged, and takes nothing new.
   */
  private check(live: Live): void {
    const { session } = live;
    if (live.pinging || session.closed || session.destroyed || session.connecting) return;
    live.pinging = true;
    const dead = () => {
      live.retired = true;
      session.destroy(new Error('the API server did not answer a PING'));
    };
    // Judged after the socket was read once more: a stalled event loop is not a dead server.
    const timer = setTimeout(
      () =>
        setImmediate(() => {
          if (live.pinging) dead();
        }),
      this.pingTimeoutMs,
    );
    timer.unref();
    try {
      session.ping((error) => {
        clearTimeout(timer);
        live.pinging = false;
        // Cancelled: the session closed meanwhile, with its own reason.
        const code = (error as { code?: unknown } | null)?.code;
        if (error && code !== 'ERR_HTTP2_PING_CANCEL' && !session.destroyed) dead();
      });
    } catch {
      clearTimeout(timer);
      dead();
    }
  }
}

const closedEarly = () =>
  Object.assign(new Error('the HTTP/2 stream closed before an answer'), { code: 'ECONNRESET' });

/**
 * Whether an error says the server does not speak HTTP/2: its TLS handshake offered no `h2` (the
 * stream's error carries the handshake's as its cause).
 */
function noHttp2(error: unknown): boolean {
  const code = (e: unknown) => (e as { code?: unknown } | null)?.code;
  const alert = 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL';
  return code(error) === alert || code((error as { cause?: unknown } | null)?.cause) === alert;
}

/**
 * A stream's body, read from the moment its answer came: chunks wait here until they are asked
 * for. (An HTTP/2 stream read only later, after it ended, fails a `for await` with a premature
 * close, so nothing here waits for its reader.) A reader that stops early cancels the stream; a
 * failed stream delivers nothing more (after an abort, what came before it is not wanted).
 */
class Body implements AnswerBody {
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private decoder: StringDecoder | undefined;

  constructor(private readonly stream: ClientHttp2Stream) {
    stream.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.notify();
    });
    stream.once('end', () => {
      this.ended = true;
      this.notify();
    });
    stream.once('error', (error: Error) => {
      this.failure ??= error;
      this.chunks.length = 0;
      this.notify();
    });
    stream.once('close', () => {
      if (!this.ended) this.failure ??= closedEarly();
      this.notify();
    });
  }

  setEncoding(encoding: 'utf8'): this {
    this.decoder = new StringDecoder(encoding);
    return this;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer | string> {
    try {
      for (;;) {
        const chunk = this.chunks.shift();
        if (chunk) yield this.decoder ? this.decoder.write(chunk) : chunk;
        else if (this.ended) {
          const rest = this.decoder?.end();
          if (rest) yield rest;
          return;
        } else if (this.failure) throw this.failure;
        else await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // Left early (the reader threw or stopped): nothing more is wanted.
      if (!this.ended && !this.stream.destroyed) {
        this.stream.close(constants.NGHTTP2_CANCEL);
        this.chunks.length = 0;
      }
    }
  }

  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8');
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.bytes();
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  private async bytes(): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    return Buffer.concat(parts);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** Each kubeconfig's connection, or null for one that cannot have one (see `http2For`). */
const connections = new WeakMap<KubeConfig, Promise<Http2Connection | null>>();

/**
 * The HTTP/2 connection for `kc`'s API server: for an `https` server reached directly (no proxy),
 * with the TLS settings client-node gives its own agents (the CA, a client certificate,
 * skip-verify, a server name), read once (as its dispatcher is: ADR 4). Undefined for any other
 * server, and after `refuseHttp2(kc)`: those go through undici. A lookup that failed (a file that
 * could not be read) is tried again on the next call.
 */
export async function http2For(
  kc: KubeConfig,
  options?: Http2Options,
): Promise<Http2Connection | undefined> {
  let known = connections.get(kc);
  if (!known) {
    const made = connectionOf(kc, options);
    known = made;
    connections.set(kc, made);
    made.catch(() => {
      if (connections.get(kc) === made) connections.delete(kc);
    });
  }
  return (await known) ?? undefined;
}

async function connectionOf(
  kc: KubeConfig,
  options: Http2Options | undefined,
): Promise<Http2Connection | null> {
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server.startsWith('https:') || cluster.proxyUrl) return null;
  const o: {
    ca?: Buffer;
    cert?: Buffer;
    key?: Buffer;
    rejectUnauthorized?: boolean;
    servername?: string;
  } = {};
  await kc.applyToHTTPSOptions(o);
  const tls: SecureClientSessionOptions = {
    ...(o.ca ? { ca: o.ca } : {}),
    ...(o.cert ? { cert: o.cert } : {}),
    ...(o.key ? { key: o.key } : {}),
    ...(o.rejectUnauthorized !== undefined ? { rejectUnauthorized: o.rejectUnauthorized } : {}),
    ...(o.servername ? { servername: o.servername } : {}),
  };
  return new Http2Connection(new URL(cluster.server).origin, tls, options);
}

/** `kc`'s server does not speak HTTP/2: its calls go through undici from now on. */
export function refuseHttp2(kc: KubeConfig): void {
  void connections.get(kc)?.then(
    (connection) => connection?.close(),
    () => undefined,
  );
  connections.set(kc, Promise.resolve(null));
}
