import {
  ApiException,
  KubeConfig,
  Observable,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { StoreUnavailableError } from '@retrospective/lock';
import { ConfigError } from '../config.js';

/** Receives one observation per Kubernetes API call (for `kube_requests_total` and friends). */
export type KubeObserver = (verb: string, code: string, seconds: number) => void;

export const ignoreCalls: KubeObserver = () => undefined;

/** The private hook of KubeConfig that builds the HTTP agent for each request. */
interface DispatcherFactory {
  createDispatcher(...args: unknown[]): unknown;
}

/**
 * client-node 2.0.1 builds a new HTTP agent for every API call, so no connection is reused and
 * each call pays a TCP and TLS handshake. The credentials' TLS settings do not change while the
 * process runs (tokens travel in headers, not in the agent), so one agent serves every call.
 */
function poolConnections(kc: KubeConfig): KubeConfig {
  const factory = kc as unknown as DispatcherFactory;
  const create = factory.createDispatcher.bind(kc);
  let dispatcher: unknown = null;
  factory.createDispatcher = (...args) => (dispatcher ??= create(...args));
  return kc;
}

/** client-node's last resort when it found no credentials at all. */
const noCredentials = 'http://localhost:8080';

/**
 * Loads credentials in the standard order: `path` (KUBECONFIG), ~/.kube/config, then in-cluster.
 * Unreadable or missing credentials are a ConfigError, not a process that retries forever.
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else kc.loadFromDefault();
  } catch (error) {
    throw new ConfigError([`KUBECONFIG: cannot load ${path ?? 'credentials'}: ${String(error)}`]);
  }
  if (kc.getCurrentCluster()?.server === noCredentials)
    throw new ConfigError([
      'no Kubernetes credentials: set KUBECONFIG, or run in a pod with a ServiceAccount',
    ]);
  return poolConnections(kc);
}

/** The status code of a Kubernetes API error, or undefined when the call never got an answer. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

/** The reason in the Status body of an API error (`Conflict`, `AlreadyExists`, ...). */
export function reasonOf(error: unknown): string | undefined {
  if (!(error instanceof ApiException) || typeof error.body !== 'string') return undefined;
  try {
    const status = JSON.parse(error.body) as { reason?: unknown };
    return typeof status.reason === 'string' ? status.reason : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What a 422 Invalid says: its message (bounded) and the fields its causes name. Nothing when the
 * body is not a Status.
 */
export function validationOf(error: unknown): { message?: string; fields: string[] } {
  if (!(error instanceof ApiException) || typeof error.body !== 'string') return { fields: [] };
  try {
    const status = JSON.parse(error.body) as {
      message?: unknown;
      details?: { causes?: unknown };
    };
    const causes: unknown[] = Array.isArray(status.details?.causes) ? status.details.causes : [];
    const field = (cause: unknown) =>
      typeof cause === 'object' && cause !== null && 'field' in cause ? cause.field : undefined;
    return {
      ...(typeof status.message === 'string' ? { message: status.message.slice(0, 1000) } : {}),
      fields: causes.map((c) => {
        const f = field(c);
        return typeof f === 'string' ? f : '';
      }),
    };
  } catch {
    return { fields: [] };
  }
}

export interface CallOptions {
  /** Aborts the call after this long (default 5 s). */
  readonly timeoutMs?: number;
  /** Aborts the call when the caller gives up, e.g. when leadership is lost. */
  readonly signal?: AbortSignal | undefined;
}

/** Request options that abort a call on `signal`. */
function withSignal(signal: AbortSignal): ConfigurationOptions {
  const abort: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(signal);
      return new Observable(Promise.resolve(context));
    },
    post: (context) => new Observable(Promise.resolve(context)),
  };
  return { middleware: [abort], middlewareMergeStrategy: 'append' };
}

/**
 * Runs one API call under a timeout and reports it. Answers of the API server stay
 * ApiExceptions for the caller to interpret; no answer at all (refused, reset, timed out)
 * and 5xx/429 become StoreUnavailableError. A call aborted by the caller's signal rejects
 * with that signal's reason.
 */
export async function kubeCall<T>(
  verb: string,
  /** Makes the call: generated API calls take the options, others the signal that aborts it. */
  call: (options: ConfigurationOptions, signal: AbortSignal) => Promise<T>,
  observe: KubeObserver,
  options: CallOptions = {},
): Promise<T> {
  const { timeoutMs = 5000, signal } = options;
  signal?.throwIfAborted();
  const timeout = AbortSignal.timeout(Math.max(1, Math.ceil(timeoutMs)));
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  try {
    const abort = signal ? AbortSignal.any([timeout, signal]) : timeout;
    const result = await call(withSignal(abort), abort);
    observe(verb, '2xx', seconds());
    return result;
  } catch (error) {
    const code = statusOf(error);
    observe(verb, code === undefined ? 'error' : String(code), seconds());
    signal?.throwIfAborted();
    if (code === undefined || code >= 500 || code === 429) {
      throw new StoreUnavailableError(`Kubernetes API ${verb} failed`, { cause: error });
    }
    throw error;
  }
}
