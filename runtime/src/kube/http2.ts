import {
  connect,
  constants,
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type SecureClientSessionOptions,
} from 'node:http2';
import type { KubeConfig } from '@kubernetes/client-node';

/** An answer as json-request.ts reads it, whichever transport brought it. */
export interface Answer {
  readonly statusCode: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: NodeJS.ReadableStream & {
    text(): Promise<string>;
    arrayBuffer(): Promise<ArrayBuffer>;
  };
}

export interface Http2Request {
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body?: string | Buffer | undefined;
  readonly signal: AbortSignal;
}

/**
 * Whether an error says the server does not speak HTTP/2: its TLS handshake offered no `h2` (the
 * stream's error carries the handshake's as its cause).
 */
function noHttp2(error: unknown): boolean {
  const code = (e: unknown) => (e as { code?: unknown } | null)?.code;
  const alert = 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL';
  return code(error) === alert || code((error as { cause?: unknown } | null)?.cause) === alert;
}

/** New streams go on a new session after this many on one (stream ids run out at 2^30). */
const streamsPerSession = 1_000_000;

/** Thrown when the server turned HTTP/2 down before anything was sent: the caller goes on HTTP/1.1. */
export class Http2Refused extends Error {}

/**
 * One HTTP/2 connection to an API server, with the kubeconfig's TLS settings, for the calls made on
 * every hand-over (the Lease update and the Lease watch): node's own HTTP/2 client costs the
 * process about half what undici's dispatcher chain does per call, and sends sooner (ADR 17). A
 * dropped or GOAWAY'd connection is replaced on the next call; a server whose TLS does not offer
 * `h2` makes `request` throw Http2Refused, once, before anything was sent.
 */
export class Http2Connection {
  private session: ClientHttp2Session | undefined;
  /** Streams open now: the connection keeps the process alive only while there are some. */
  private open = 0;
  /** Streams the current session has begun: a client has about a billion stream ids per session. */
  private begun = 0;

  constructor(
    private readonly origin: string,
    private readonly tls: SecureClientSessionOptions,
  ) {}

  close(): void {
    this.session?.close();
    this.session = undefined;
  }

  private current(): ClientHttp2Session {
    const live = this.session;
    if (live && !live.closed && !live.destroyed && this.begun < streamsPerSession) return live;
    // A session that has used its share goes on until its streams end (a watch's, at most its
    // timeout), and new streams go on a new one.
    live?.close();
    this.begun = 0;
    const session = connect(this.origin, { ...this.tls, ALPNProtocols: ['h2'] });
    const drop = () => {
      if (this.session === session) this.session = undefined;
    };
    // Every stream hears of the failure itself; the session's own error only ends it.
    session.on('error', drop);
    session.on('goaway', drop);
    session.on('close', drop);
    session.unref();
    this.session = session;
    return session;
  }

  /**
   * A new stream on `session`; on a new session when that one was closing (a GOAWAY not heard yet),
   * as nothing was sent on it.
   */
  private begin(headers: OutgoingHttpHeaders, endStream: boolean) {
    const session = this.current();
    this.begun++;
    try {
      return { session, stream: session.request(headers, { endStream }) };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code !== 'ERR_HTTP2_GOAWAY_SESSION' && code !== 'ERR_HTTP2_INVALID_SESSION') throw error;
      if (this.session === session) this.session = undefined;
      const next = this.current();
      return { session: next, stream: next.request(headers, { endStream }) };
    }
  }

  async request(path: string, req: Http2Request): Promise<Answer> {
    req.signal.throwIfAborted();
    const headers: OutgoingHttpHeaders = {
      ':method': req.method,
      ':path': path,
    };
    for (const [name, value] of Object.entries(req.headers)) headers[name.toLowerCase()] = value;
    if (req.body !== undefined) headers['content-length'] = Buffer.byteLength(req.body);
    const { session, stream } = this.begin(headers, req.body === undefined);
    // Its failures reach whoever reads it (the answer's promise, then its body): never the process.
    stream.on('error', () => undefined);
    if (this.open++ === 0) session.ref();
    stream.once('close', () => {
      if (--this.open === 0 && !session.destroyed) session.unref();
    });
    const abort = () => {
      stream.close(constants.NGHTTP2_CANCEL);
      stream.destroy(req.signal.reason as Error);
    };
    req.signal.addEventListener('abort', abort, { once: true });
    stream.once('close', () => req.signal.removeEventListener('abort', abort));
    if (req.body !== undefined) stream.end(req.body);
    const response = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
      const failed = (error: unknown) => reject(refusedOr(error as Error, session));
      stream.once('response', (h) => {
        stream.off('error', failed);
        resolve(h);
      });
      stream.once('error', failed);
      stream.once('close', () =>
        failed(req.signal.aborted ? (req.signal.reason as Error) : closedEarly()),
      );
    });
    return answer(stream, response);
  }
}

const closedEarly = () =>
  Object.assign(new Error('the HTTP/2 stream closed before an answer'), {
    code: 'ECONNRESET',
  });

/** The error as is, or Http2Refused when the server turned HTTP/2 down in the handshake. */
function refusedOr(error: Error, session: ClientHttp2Session): Error {
  const alpn = session.alpnProtocol;
  if (noHttp2(error) || (alpn !== undefined && alpn !== 'h2'))
    return new Http2Refused(`the API server does not speak HTTP/2: ${String(error)}`, {
      cause: error,
    });
  return error;
}

function answer(stream: ClientHttp2Stream, response: IncomingHttpHeaders): Answer {
  const { ':status': status, ...rest } = response;
  const collect = async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
    return Buffer.concat(chunks);
  };
  const body = Object.assign(stream, {
    text: async () => (await collect()).toString('utf8'),
    arrayBuffer: async () => {
      const bytes = await collect();
      return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    },
  });
  return { statusCode: Number(status), headers: rest, body };
}

/** Each kubeconfig's connection; null for one that cannot have one (see `http2For`). */
const connections = new WeakMap<KubeConfig, Promise<Http2Connection | null>>();

/**
 * The HTTP/2 connection for `kc`'s API server: for an `https` server reached directly (no proxy),
 * with the TLS settings client-node gives its own agents (the CA, a client certificate,
 * skip-verify, a server name), read once (as its dispatcher is: ADR 4). Undefined for any other
 * server, and after `refuseHttp2(kc)`: those go through undici.
 */
export async function http2For(kc: KubeConfig): Promise<Http2Connection | undefined> {
  let known = connections.get(kc);
  if (!known) {
    known = connectionOf(kc);
    connections.set(kc, known);
  }
  return (await known) ?? undefined;
}

async function connectionOf(kc: KubeConfig): Promise<Http2Connection | null> {
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
  return new Http2Connection(new URL(cluster.server).origin, tls);
}

/** `kc`'s server does not speak HTTP/2: its calls go through undici from now on. */
export function refuseHttp2(kc: KubeConfig): void {
  void connections.get(kc)?.then((connection) => connection?.close());
  connections.set(kc, Promise.resolve(null));
}
