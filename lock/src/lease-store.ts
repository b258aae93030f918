import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { fromLease, lockLabel, toLease } from './lease-codec.js';
import { LeaseWatch } from './lease-watch.js';
import { kubeCall, statusOf, type KubeObserver } from './kube.js';
import { emptyLock, type LockState, type Versioned } from './model.js';
import type { ChangeListener, LockStore } from './store.js';

export interface LeaseStoreOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly observe?: KubeObserver;
  readonly onWatchRestart?: (reason: string) => void;
  readonly requestTimeoutMs?: number;
}

interface Entry {
  readonly lease: V1Lease;
  readonly versioned: Versioned;
}

/**
 * Locks as coordination.k8s.io/v1 Leases. The cache is fed only by the watch, so it moves
 * forward in the API server's order; writes are replaces carrying the decided resourceVersion.
 */
export class LeaseStore implements LockStore {
  private readonly api: CoordinationV1Api;
  private readonly cache = new Map<string, Entry>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly watch: LeaseWatch;
  private readonly observe: KubeObserver;

  constructor(private readonly options: LeaseStoreOptions) {
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.observe = options.observe ?? (() => {});
    this.watch = new LeaseWatch({
      kubeConfig: options.kubeConfig,
      api: this.api,
      namespace: options.namespace,
      labelSelector: lockLabel,
      observe: this.observe,
      onList: (leases) => this.relisted(leases),
      onEvent: (type, lease) => (type === 'DELETED' ? this.removed(lease) : this.observed(lease)),
      ...(options.onWatchRestart ? { onRestart: options.onWatchRestart } : {}),
    });
  }

  start(): Promise<void> {
    return this.watch.start();
  }

  cached(name: string): Versioned | undefined {
    return this.cache.get(name)?.versioned;
  }

  async read(name: string): Promise<Versioned | undefined> {
    try {
      const lease = await this.call('get', (o) =>
        this.api.readNamespacedLease({ name, namespace: this.options.namespace }, o),
      );
      return fromLease(lease);
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async replace(next: LockState, version: string): Promise<Versioned | 'conflict'> {
    const base = this.cache.get(next.name)?.lease;
    const body = toLease(next, version, base);
    if (body.metadata) body.metadata.managedFields = undefined;
    try {
      const lease = await this.call('update', (o) =>
        this.api.replaceNamespacedLease(
          { name: next.name, namespace: this.options.namespace, body },
          o,
        ),
      );
      return fromLease(lease);
    } catch (error) {
      // 409: someone wrote since we read. 404: the Lease is gone; both mean "decide again".
      if (statusOf(error) === 409 || statusOf(error) === 404) return 'conflict';
      throw error;
    }
  }

  async ensure(names: readonly string[]): Promise<void> {
    for (const name of names) {
      if (this.cache.has(name) || (await this.read(name))) continue;
      try {
        await this.call('create', (o) =>
          this.api.createNamespacedLease(
            { namespace: this.options.namespace, body: toLease(emptyLock(name), undefined) },
            o,
          ),
        );
      } catch (error) {
        if (statusOf(error) !== 409) throw error;
      }
    }
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  ready(): boolean {
    return this.watch.healthy();
  }

  async close(): Promise<void> {
    await this.watch.stop();
    this.listeners.clear();
  }

  private call<T>(verb: string, fn: Parameters<typeof kubeCall<T>>[1]): Promise<T> {
    return kubeCall(verb, fn, this.observe, this.options.requestTimeoutMs);
  }

  private observed(lease: V1Lease): void {
    const versioned = fromLease(lease);
    const name = versioned.state.name;
    const prev = this.cache.get(name);
    if (prev?.versioned.version === versioned.version) return;
    this.cache.set(name, { lease, versioned });
    this.emit(name, prev?.versioned.state, versioned.state);
  }

  private removed(lease: V1Lease): void {
    const name = lease.metadata?.name ?? '';
    const prev = this.cache.get(name);
    if (!prev) return;
    this.cache.delete(name);
    this.emit(name, prev.versioned.state, undefined);
  }

  private relisted(leases: V1Lease[]): void {
    const seen = new Set<string>();
    for (const lease of leases) {
      seen.add(lease.metadata?.name ?? '');
      this.observed(lease);
    }
    for (const [name, entry] of this.cache) {
      if (!seen.has(name)) this.removed(entry.lease);
    }
  }

  private emit(name: string, prev: LockState | undefined, next: LockState | undefined): void {
    for (const listener of this.listeners) listener({ name, prev, next });
  }
}
