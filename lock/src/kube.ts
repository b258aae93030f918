import {
  ApiException,
  KubeConfig,
  Observable,
  type ConfigurationOptions,
  type ObservableMiddleware,
} from '@kubernetes/client-node';
import { StoreUnavailableError } from './errors.js';

/** Receives one observation per Kubernetes API call (for `kube_requests_total` and friends). */
export type KubeObserver = (verb: string, code: string, seconds: number) => void;

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

/** Loads credentials in the standard order: KUBECONFIG (or `path`), then in-cluster. */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return poolConnections(kc);
}

/** The status code of a Kubernetes API error, or undefined when the call never got an answer. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof ApiException ? error.code : undefined;
}

/** Request options that abort a call after `timeoutMs`. */
function withTimeout(timeoutMs: number): ConfigurationOptions {
  const timeout: ObservableMiddleware = {
    pre: (context) => {
      context.setSignal(AbortSignal.timeout(timeoutMs));
      return new Observable(Promise.resolve(context));
    },
    post: (context) => new Observable(Promise.resolve(context)),
  };
  return { middleware: [timeout], middlewareMergeStrategy: 'append' };
}

/**
 * Runs one API call under a timeout and reports it. Answers of the API server stay
 * ApiExceptions for the caller to interpret; no answer at all (refused, reset, timed out)
 * and 5xx/429 become StoreUnavailableError.
 */
export async function kubeCall<T>(
  verb: string,
  call: (options: ConfigurationOptions) => Promise<T>,
  observe: KubeObserver,
  timeoutMs = 5000,
): Promise<T> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  try {
    const result = await call(withTimeout(timeoutMs));
    observe(verb, '2xx', seconds());
    return result;
  } catch (error) {
    const code = statusOf(error);
    observe(verb, code === undefined ? 'error' : String(code), seconds());
    if (code === undefined || code >= 500 || code === 429) {
      throw new StoreUnavailableError(`Kubernetes API ${verb} failed`, { cause: error });
    }
    throw error;
  }
}
