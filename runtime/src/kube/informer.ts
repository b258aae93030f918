import { setTimeout as sleep } from 'node:timers/promises';
import {
  type ConfigurationOptions,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { kubeCall, type KubeObserver } from './client.js';
import { getJson, watchJson } from './json-request.js';

export interface ObjectList<T> {
  readonly items: T[];
  readonly metadata?: { readonly resourceVersion?: string | undefined } | undefined;
}

export interface InformerOptions<T extends KubernetesObject> {
  readonly kubeConfig: KubeConfig;
  /** The collection's URL path, e.g. `/apis/coordination.k8s.io/v1/namespaces/ns/leases`. */
  readonly path: string;
  /**
   * Lists the collection with the same selectors as the watch (`labelSelector`, `fieldSelector`).
   * Unless said, a GET of `path` as raw JSON: the objects as the API server sent them, as the
   * watch's are (a generated API's list keeps only the keys its model classes know).
   */
  readonly list?: (options: ConfigurationOptions, signal: AbortSignal) => Promise<ObjectList<T>>;
  readonly labelSelector?: string | undefined;
  readonly fieldSelector?: string | undefined;
  readonly observe: KubeObserver;
  readonly onRestart?: ((reason: 'gone' | 'error') => void) | undefined;
  /** Longest wait between attempts while the API server is unreachable. */
  readonly maxBackoffMs?: number | undefined;
  /** How long the API server keeps one watch open before it ends it (the watch then resumes). */
  readonly watchTimeoutSeconds?: number | undefined;
  readonly requestTimeoutMs?: number | undefined;
}

export interface InformerEvent<T> {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** The object as it is now; for DELETED, as it was last seen. */
  readonly object: T;
  /** The cached object it replaced, if any. */
  readonly old: T | undefined;
}

export type InformerHandler<T> = (event: InformerEvent<T>) => void;

type WatchOutcome =
  | { kind: 'closed'; version: string }
  | { kind: 'gone' }
  | { kind: 'error'; version: string; error: unknown };

const nameOf = (object: KubernetesObject) => object.metadata?.name ?? '';
const versionOf = (object: KubernetesObject) => object.metadata?.resourceVersion;

/**
 * Drops an object's managedFields, as client-go's informers can (TransformStripManagedFields):
 * nothing here reads them, writes leave them out, and they are often most of a small object's
 * size, so a cache of a thousand Locks and Leases keeps only what it uses.
 */
function withoutManagedFields(object: unknown): void {
  const metadata = (object as { metadata?: { managedFields?: unknown } } | undefined)?.metadata;
  if (metadata?.managedFields !== undefined) delete metadata.managedFields;
}

/**
 * A cache of raw objects kept current by a list-then-watch loop that never gives up, in the
 * mould of client-go's informers: a watch that ends cleanly is resumed from the last
 * resourceVersion at once (idle watches end every half minute, so this is the common path);
 * 410 Gone and every error lead to a fresh list, after a capped backoff while the API server is
 * unreachable. A relist reports the differences to the cache as events, so handlers see every
 * object's last state even across gaps.
 */
export class Informer<T extends KubernetesObject> {
  private readonly objects = new Map<string, T>();
  private readonly handlers = new Set<InformerHandler<T>>();
  private readonly stopping = new AbortController();
  private active: AbortController | undefined;
  private synced = false;
  private watching = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: InformerOptions<T>) {}

  get(name: string): T | undefined {
    return this.objects.get(name);
  }

  list(): T[] {
    return [...this.objects.values()];
  }

  on(handler: InformerHandler<T>): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  /** Starts the loop; resolves after the first successful list. */
  start(): Promise<void> {
    return new Promise((resolve) => {
      this.loop ??= this.run(resolve);
    });
  }

  /** True once the first list arrived; the cache then only moves forward. */
  hasSynced(): boolean {
    return this.synced;
  }

  /** True while the last list or watch succeeded: the cache is current, not just synced once. */
  isWatching(): boolean {
    return this.watching;
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.active?.abort();
    await this.loop;
    this.handlers.clear();
  }

  private stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async run(onSynced: () => void): Promise<void> {
    const { maxBackoffMs = 1000 } = this.options;
    let backoff = 100;
    let version: string | undefined;
    while (!this.stopped()) {
      try {
        if (version === undefined) {
          version = await this.relist();
          if (!this.synced) onSynced();
          this.synced = this.watching = true;
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
        this.watching = false;
        version = undefined;
        this.options.onRestart?.('error');
        // timers/promises removes its abort listener when the timer fires: no listener leak.
        await sleep(backoff, undefined, { signal: this.stopping.signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, maxBackoffMs);
      }
    }
  }

  /** The selectors the list and the watch both carry. */
  private selectors(): Record<string, string> {
    const { labelSelector, fieldSelector } = this.options;
    return {
      ...(labelSelector ? { labelSelector } : {}),
      ...(fieldSelector ? { fieldSelector } : {}),
    };
  }

  private async relist(): Promise<string> {
    const { kubeConfig, path, observe, requestTimeoutMs } = this.options;
    const list =
      this.options.list ??
      ((_: ConfigurationOptions, signal: AbortSignal) =>
        getJson<ObjectList<T>>(kubeConfig, path, this.selectors(), signal));
    const result = await kubeCall('list', list, observe, {
      timeoutMs: requestTimeoutMs,
      signal: this.stopping.signal,
    });
    const seen = new Set<string>();
    // A 200 without a list (something in front of kube-apiserver): an error, never "all gone".
    if (!Array.isArray((result as { items?: unknown } | null)?.items))
      throw new Error(`the list of ${path} had no items`);
    for (const object of result.items) {
      seen.add(nameOf(object));
      this.apply(this.objects.has(nameOf(object)) ? 'MODIFIED' : 'ADDED', object);
    }
    for (const [name, object] of this.objects) if (!seen.has(name)) this.apply('DELETED', object);
    return result.metadata?.resourceVersion ?? '';
  }

  private apply(type: InformerEvent<T>['type'], object: T): void {
    withoutManagedFields(object);
    const name = nameOf(object);
    const old = this.objects.get(name);
    if (type === 'DELETED') {
      if (!old) return;
      this.objects.delete(name);
    } else {
      if (old && versionOf(old) === versionOf(object)) return;
      this.objects.set(name, object);
    }
    const event = { type, object, old };
    for (const handler of this.handlers) handler(event);
  }

  private watchFrom(resourceVersion: string): Promise<WatchOutcome> {
    const { kubeConfig, path } = this.options;
    let version = resourceVersion;
    let gone = false;
    /** An ERROR event other than 410: a fault, retried after the backoff like any other. */
    let failed: Error | undefined;
    return new Promise((resolve) => {
      const done = (error: unknown) => {
        if (gone) resolve({ kind: 'gone' });
        else if (failed) resolve({ kind: 'error', version, error: failed });
        // The client aborts a watch that was silent for 30 s: that is a clean end, not a fault.
        else if (!error || (error instanceof Error && error.name === 'TimeoutError'))
          resolve({ kind: 'closed', version });
        else if (error instanceof Error && error.name === 'AbortError')
          resolve({ kind: 'closed', version });
        else resolve({ kind: 'error', version, error });
      };
      const onEvent = (type: string, object: T & { code?: number }) => {
        if (type === 'ERROR') {
          if (object.code === 410) gone = true;
          else failed = new Error(`watch error event (code ${String(object.code)})`);
          this.active?.abort();
          return;
        }
        const next = versionOf(object);
        if (next) version = next;
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') {
          this.watching = true;
          this.apply(type, object);
        }
      };
      const query = {
        resourceVersion,
        allowWatchBookmarks: 'true',
        timeoutSeconds: String(this.options.watchTimeoutSeconds ?? 25),
        ...this.selectors(),
      };
      const controller = new AbortController();
      this.active = controller;
      if (this.stopped()) controller.abort();
      const event = onEvent as (type: string, object: unknown) => void;
      watchJson(kubeConfig, path, query, event, controller.signal).then(() => done(null), done);
    });
  }
}
