import {
  Watch,
  type CoordinationV1Api,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { kubeCall, type KubeObserver } from './kube.js';

export interface LeaseWatchOptions {
  readonly kubeConfig: KubeConfig;
  readonly api: CoordinationV1Api;
  readonly namespace: string;
  readonly labelSelector: string;
  /** Called with the full set of Leases after every (re)list, then with each watch event. */
  readonly onList: (leases: V1Lease[]) => void;
  readonly onEvent: (type: 'ADDED' | 'MODIFIED' | 'DELETED', lease: V1Lease) => void;
  readonly onRestart?: (reason: string) => void;
  readonly observe: KubeObserver;
  /** Longest wait between attempts while the API server is unreachable. */
  readonly maxBackoffMs?: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * A list-then-watch loop that never gives up: a watch that ends cleanly is resumed from the
 * last resourceVersion at once (idle watches are closed every half minute, so this is the
 * common path and costs no delay); 410 Gone and every error lead to a fresh list, after a
 * capped backoff while the API server is unreachable.
 */
export class LeaseWatch {
  private readonly stopping = new AbortController();
  private active: AbortController | undefined;
  private synced = false;
  private connected = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: LeaseWatchOptions) {}

  /** Resolves after the first successful list. */
  start(): Promise<void> {
    return new Promise((resolve) => {
      this.loop = this.run(resolve);
    });
  }

  /** True once listed and while the last list or watch succeeded. */
  healthy(): boolean {
    return this.synced && this.connected;
  }

  private stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.active?.abort();
    await this.loop;
  }

  private async run(onSynced: () => void): Promise<void> {
    const { maxBackoffMs = 1000 } = this.options;
    let backoff = 100;
    let version: string | undefined;
    while (!this.stopped()) {
      try {
        if (version === undefined) {
          version = await this.list();
          if (!this.synced) onSynced();
          this.synced = this.connected = true;
          backoff = 100;
        }
        const outcome = await this.watchFrom(version);
        if (outcome.kind === 'gone') {
          this.options.onRestart?.('gone');
          version = undefined;
        } else {
          version = outcome.version;
          if (outcome.kind === 'error') throw outcome.error;
        }
      } catch {
        if (this.stopped()) break;
        this.connected = false;
        version = undefined;
        this.options.onRestart?.('error');
        await sleep(backoff, this.stopping.signal);
        backoff = Math.min(backoff * 2, maxBackoffMs);
      }
    }
  }

  private async list(): Promise<string> {
    const { api, namespace, labelSelector, observe } = this.options;
    const list = await kubeCall(
      'list',
      (options) => api.listNamespacedLease({ namespace, labelSelector }, options),
      observe,
    );
    this.options.onList(list.items);
    return list.metadata?.resourceVersion ?? '';
  }

  private watchFrom(
    resourceVersion: string,
  ): Promise<
    | { kind: 'closed'; version: string }
    | { kind: 'gone' }
    | { kind: 'error'; version: string; error: unknown }
  > {
    const { kubeConfig, namespace, labelSelector } = this.options;
    let version = resourceVersion;
    let gone = false;
    return new Promise((resolve) => {
      const done = (error: unknown) => {
        if (gone) resolve({ kind: 'gone' });
        // The client aborts a watch that was silent for 30 s: that is a clean end, not a fault.
        else if (!error || (error instanceof Error && error.name === 'TimeoutError'))
          resolve({ kind: 'closed', version });
        else if (error instanceof Error && error.name === 'AbortError')
          resolve({ kind: 'closed', version });
        else resolve({ kind: 'error', version, error });
      };
      const onEvent = (type: string, object: V1Lease & { code?: number }) => {
        if (type === 'ERROR') {
          if (object.code === 410) gone = true;
          this.active?.abort();
          return;
        }
        const next = object.metadata?.resourceVersion;
        if (next) version = next;
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
          this.connected = true;
          this.options.onEvent(type, object);
        }
      };
      new Watch(kubeConfig)
        .watch(
          `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
          { labelSelector, resourceVersion, allowWatchBookmarks: true, timeoutSeconds: 25 },
          onEvent,
          done,
        )
        .then((controller) => {
          this.active = controller;
          if (this.stopped()) controller.abort();
        })
        .catch(done);
    });
  }
}
