import {
  ApiException,
  HttpMethod,
  RequestContext,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { request } from 'undici';
import { http2For, Http2Refused, refuseHttp2, type Answer } from './http2.js';
import { decodeLease, decodeStatus, encodeLease, protobuf } from './lease-proto.js';

/** Names this process in the API server's audit log. */
const userAgent = 'retrospective';

/**
 * Sends over the kubeconfig's HTTP/2 connection when its server is reached that way (http2.ts);
 * else with client-node's pooled dispatcher (TLS, proxy) through its own `request` method, so it
 * is client-node's copy of undici that runs it whichever copy this file resolves; with undici's
 * global dispatcher when client-node has none (a plain-HTTP server).
 */
async function send(
  kc: KubeConfig,
  ctx: RequestContext,
  url: URL,
  options: {
    method: string;
    headers: Record<string, string>;
    body?: string | Buffer;
    signal: AbortSignal;
  },
): Promise<Answer> {
  const h2 = await http2For(kc);
  if (h2)
    try {
      return await h2.request(url.pathname + url.search, options);
    } catch (error) {
      if (!(error instanceof Http2Refused)) throw error;
      refuseHttp2(kc);
    }
  const dispatcher = ctx.getDispatcher();
  const answer = dispatcher
    ? await dispatcher.request({ origin: url.origin, path: url.pathname + url.search, ...options })
    : await request(url, options);
  return answer;
}

/** `path` on the current cluster, with a request context carrying the kubeconfig's credentials. */
async function authorized(kc: KubeConfig, path: string, method: HttpMethod) {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(server + path);
  const ctx = new RequestContext(url.toString(), method);
  await kc.applySecurityAuthentication(ctx);
  return { url, ctx };
}

/** A refusal as the generated API reports it, so callers read its status the same way. */
function refusal(res: Answer, text: string): ApiException<string> {
  const headers = Object.fromEntries(
    Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]),
  );
  return new ApiException(res.statusCode, `HTTP-Code: ${res.statusCode}`, text, headers);
}

/** The most a watch line may take (Kubernetes objects are at most about 1.5 MiB in etcd). */
const maxLineBytes = 16 * 1024 * 1024;

/**
 * One JSON request to the API server with client-node's credentials and connection pool, but
 * without its generated API: no model serializer on the way in or out, no Fetch API streams. For
 * the call made on every hand-over (the Lease update), where those were most of its cost in the
 * process. Errors are the generated API's (ApiException with the status and body), so callers
 * read them the same way.
 */
export async function jsonRequest<T>(
  kc: KubeConfig,
  method: 'PUT',
  path: string,
  body: unknown,
  signal: AbortSignal,
): Promise<T> {
  const json = 'application/json';
  const { res, bytes } = await put(kc, path, JSON.stringify(body), json, json, signal);
  return parsed(res, bytes) as T;
}

/** A JSON answer: its object, or its refusal as an ApiException. */
function parsed(res: Answer, bytes: Buffer): unknown {
  const text = bytes.toString('utf8');
  if (res.statusCode < 200 || res.statusCode > 299) throw refusal(res, text);
  return JSON.parse(text) as unknown;
}

/** A PUT of `body` (`type`) with the credentials: the answer, read whole. */
async function put(
  kc: KubeConfig,
  path: string,
  body: string | Buffer,
  type: string,
  accept: string,
  signal: AbortSignal,
) {
  const { url, ctx } = await authorized(kc, path, HttpMethod.PUT);
  const res = await send(kc, ctx, url, {
    method: 'PUT',
    headers: { ...ctx.getHeaders(), accept, 'content-type': type, 'user-agent': userAgent },
    body,
    signal,
  });
  return { res, bytes: Buffer.from(await res.body.arrayBuffer()) };
}

/**
 * A GET of `path` (with `query`) as JSON, the object as the API server sent it: unlike the
 * generated API's model classes, which keep only the keys they know, nothing is dropped, so a
 * write built on what was read carries every field a later Kubernetes adds (as the watch's
 * objects do). Refusals are ApiExceptions with the JSON Status text.
 */
export async function getJson<T>(
  kc: KubeConfig,
  path: string,
  query: Record<string, string>,
  signal: AbortSignal,
): Promise<T> {
  const search = new URLSearchParams(query).toString();
  const { url, ctx } = await authorized(kc, search ? `${path}?${search}` : path, HttpMethod.GET);
  const res = await send(kc, ctx, url, {
    method: 'GET',
    headers: { ...ctx.getHeaders(), accept: 'application/json', 'user-agent': userAgent },
    signal,
  });
  return parsed(res, Buffer.from(await res.body.arrayBuffer())) as T;
}

/**
 * Credentials whose server turned protobuf down (415 or 406, say a proxy in front of
 * kube-apiserver) or answered it with something not a Lease: their Lease updates go as JSON from
 * then on, for as long as the process runs.
 */
const jsonOnly = new WeakSet<KubeConfig>();

/**
 * Replaces a Lease in Kubernetes' protobuf encoding, asking for the answer in it too: for
 * kube-apiserver, the cheapest update there is (ADR 15). A Lease with something the encoder does
 * not know goes as JSON; an answer in JSON is read as such. A server that refuses protobuf (415,
 * 406) gets the update again as JSON, and JSON from then on. Refusals are ApiExceptions with the
 * JSON Status text, as from `jsonRequest`.
 */
export async function putLease(
  kc: KubeConfig,
  path: string,
  lease: V1Lease,
  signal: AbortSignal,
): Promise<V1Lease> {
  const body = jsonOnly.has(kc) ? undefined : encodeLease(lease);
  if (!body) return jsonRequest<V1Lease>(kc, 'PUT', path, lease, signal);
  const { res, bytes } = await put(
    kc,
    path,
    body,
    protobuf,
    `${protobuf}, application/json`,
    signal,
  );
  if (res.statusCode === 415 || res.statusCode === 406) {
    // Turned down before anything was written: the same update, as JSON.
    jsonOnly.add(kc);
    return jsonRequest<V1Lease>(kc, 'PUT', path, lease, signal);
  }
  const type = res.headers['content-type'];
  const proto = typeof type === 'string' && type.startsWith(protobuf);
  if (res.statusCode < 200 || res.statusCode > 299)
    throw refusal(res, (proto && decodeStatus(bytes)) || bytes.toString('utf8'));
  if (!proto) return JSON.parse(bytes.toString('utf8')) as V1Lease;
  try {
    return decodeLease(bytes);
  } catch (error) {
    // Written, but the answer is unreadable: this call fails (an unknown outcome, which callers
    // handle), and later ones go as JSON rather than fail the same way.
    jsonOnly.add(kc);
    throw error;
  }
}

/**
 * Streams a watch: each event line's `type` and `object` to `onEvent`, as client-node's Watch
 * does but on the same lean path (no Fetch API streams, no readline). Resolves when the server
 * ends the watch; rejects with the abort reason when `signal` aborts, with a TimeoutError after
 * `idleMs` without a byte (the stream is then cancelled, and an HTTP/2 connection that does not
 * answer a PING dropped: http2.ts), and with an ApiException for a status other than 200.
 */
export async function watchJson(
  kc: KubeConfig,
  path: string,
  query: Record<string, string>,
  onEvent: (type: string, object: unknown) => void,
  signal: AbortSignal,
  idleMs = 30_000,
): Promise<void> {
  const params = new URLSearchParams({ ...query, watch: 'true' });
  const { url, ctx } = await authorized(kc, `${path}?${params.toString()}`, HttpMethod.GET);
  const idle = new AbortController();
  const timer = setTimeout(
    () => idle.abort(new DOMException('the watch was silent', 'TimeoutError')),
    idleMs,
  );
  timer.unref();
  // Every chunk starts the wait again (one timer, re-armed: cheaper than a new one per event).
  const quiet = () => timer.refresh();
  try {
    const res = await send(kc, ctx, url, {
      method: 'GET',
      headers: { ...ctx.getHeaders(), accept: 'application/json', 'user-agent': userAgent },
      signal: AbortSignal.any([signal, idle.signal]),
    });
    if (res.statusCode !== 200) throw refusal(res, await res.body.text());
    const deliver = (line: string) => {
      let event: { type?: unknown; object?: unknown };
      try {
        event = JSON.parse(line) as typeof event;
      } catch {
        return; // as client-node's Watch: a line that is not JSON is skipped
      }
      const { type, object } = event;
      if (typeof type === 'string' && typeof object === 'object' && object !== null)
        onEvent(type, object);
    };
    // Decoded as a stream: a character split between two chunks stays whole.
    res.body.setEncoding('utf8');
    let rest = '';
    for await (const chunk of res.body as AsyncIterable<string>) {
      quiet();
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      if (rest.length > maxLineBytes) throw new Error(`a watch line over ${maxLineBytes} bytes`);
      for (const line of lines) if (line) deliver(line);
    }
    // The last event, should the server end without a newline after it.
    if (rest) deliver(rest);
  } finally {
    clearTimeout(timer);
  }
}
