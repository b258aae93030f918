import { ApiException, HttpMethod, RequestContext, type KubeConfig } from '@kubernetes/client-node';
import { request } from 'undici';

/** Names this process in the API server's audit log and in the Lease's managedFields. */
const userAgent = 'retrospective';

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
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(server + path);
  const ctx = new RequestContext(url.toString(), HttpMethod[method]);
  await kc.applySecurityAuthentication(ctx);
  const res = await request(url, {
    method,
    headers: {
      ...ctx.getHeaders(),
      accept: 'application/json',
      'content-type': 'application/json',
      'user-agent': userAgent,
    },
    body: JSON.stringify(body),
    signal,
    // client-node's pooled agent (TLS, proxy); none for a plain-HTTP server.
    dispatcher: ctx.getDispatcher(),
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode > 299) {
    const headers = Object.fromEntries(
      Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')]),
    );
    throw new ApiException(res.statusCode, `HTTP-Code: ${res.statusCode}`, text, headers);
  }
  return JSON.parse(text) as T;
}

/**
 * Streams a watch: each event line's `type` and `object` to `onEvent`, as client-node's Watch
 * does but on the same lean path (no Fetch API streams, no readline). Resolves when the server
 * ends the watch; rejects with the abort reason when `signal` aborts, with a TimeoutError after
 * `idleMs` without a byte (the connection is then dropped), and with an ApiException for a
 * status other than 200.
 */
export async function watchJson(
  kc: KubeConfig,
  path: string,
  query: Record<string, string>,
  onEvent: (type: string, object: unknown) => void,
  signal: AbortSignal,
  idleMs = 30_000,
): Promise<void> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('no current cluster in the kubeconfig');
  const url = new URL(server + path);
  url.searchParams.set('watch', 'true');
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
  const ctx = new RequestContext(url.toString(), HttpMethod.GET);
  await kc.applySecurityAuthentication(ctx);
  const idle = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const quiet = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => idle.abort(new DOMException('the watch was silent', 'TimeoutError')),
      idleMs,
    );
    timer.unref();
  };
  quiet();
  try {
    const res = await request(url, {
      method: 'GET',
      headers: { ...ctx.getHeaders(), accept: 'application/json', 'user-agent': userAgent },
      signal: AbortSignal.any([signal, idle.signal]),
      dispatcher: ctx.getDispatcher(),
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      throw new ApiException(res.statusCode, `HTTP-Code: ${res.statusCode}`, text, {});
    }
    // Decoded as a stream: a character split between two chunks stays whole.
    res.body.setEncoding('utf8');
    let rest = '';
    for await (const chunk of res.body as AsyncIterable<string>) {
      quiet();
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (!line) continue;
        let event: { type?: unknown; object?: unknown };
        try {
          event = JSON.parse(line) as typeof event;
        } catch {
          continue; // as client-node's Watch: a line that is not JSON is skipped
        }
        if (typeof event.type === 'string') onEvent(event.type, event.object);
      }
    }
  } finally {
    clearTimeout(timer);
  }
}
