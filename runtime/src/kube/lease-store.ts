import {
  CoordinationV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Lease,
  type V1OwnerReference,
} from '@kubernetes/client-node';
import {
  LockInvalidError,
  LockTooLargeError,
  StoreUnavailableError,
  emptyLock,
  notifyListeners,
  type ChangeListener,
  type EnsureOptions,
  type LockState,
  type LockStore,
  type StoreCallOptions,
  type Versioned,
} from '@retrospective/lock';
import { ignoreCalls, kubeCall, statusOf, validationOf, type KubeObserver } from './client.js';
import { Informer, type InformerEvent } from './informer.js';
import { getJson, putLease } from './json-request.js';
import {
  annotationBytes,
  fromLease,
  lockLabel,
  maxAnnotationBytes,
  toLease,
  type LineForm,
} from './lease-codec.js';
import { kubeObserver, type KubeMetrics } from './metrics.js';

export interface LeaseStoreOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /**
   * The locks to watch. A list: each has its own watch, selected by name, so RBAC can pin it.
   * `labelled`: one watch of every lock Lease of the namespace (the locks a catalog of `Lock`
   * objects declares, which come and go while the process runs).
   */
  readonly locks: readonly string[] | 'labelled';
  readonly observe?: KubeObserver | undefined;
  readonly onWatchRestart?: ((reason: string) => void) | undefined;
  readonly requestTimeoutMs?: number | undefined;
  readonly watchTimeoutSeconds?: number | undefined;
  /** How the waiting line is written (ADR 16); `short` unless said. */
  readonly lineForm?: LineForm | undefined;
}

/**
 * Locks as coordination.k8s.io/v1 Leases. The cache is fed only by the informer, so it moves
 * forward in the API server's order; writes are replaces built on the exact Lease that was
 * decided on, carrying its resourceVersion.
 */
export class LeaseStore implements LockStore {
  private readonly api: CoordinationV1Api;
  private readonly informers: Informer<V1Lease>[];
  /** The informer's Leases, decoded once per resourceVersion. */
  private readonly decoded = new Map<string, Versioned>();
  /**
   * What this process itself last wrote, until the watch delivers it: the next decision starts
   * from it rather than from the state before (which would cost a conflict or a fresh read).
   * Change events still come from the watch alone.
   */
  private readonly written = new Map<string, Versioned>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly observe: KubeObserver;

  constructor(private readonly options: LeaseStoreOptions) {
    const { kubeConfig, namespace } = options;
    this.api = kubeConfig.makeApiClient(CoordinationV1Api);
    this.observe = options.observe ?? ignoreCalls;
    const selectors =
      options.locks === 'labelled'
        ? [{ labelSelector: `${lockLabel}=true` }]
        : options.locks.map((lock) => ({ fieldSelector: `metadata.name=${lock}` }));
    this.informers = selectors.map((selector) => {
      const informer = new Informer<V1Lease>({
        kubeConfig,
        path: leasesPath(namespace),
        ...selector,
        observe: this.observe,
        onRestart: options.onWatchRestart,
        requestTimeoutMs: options.requestTimeoutMs,
        watchTimeoutSeconds: options.watchTimeoutSeconds,
      });
      informer.on((event) => this.changed(event));
      return informer;
    });
  }

  async start(): Promise<void> {
    await Promise.all(this.informers.map((informer) => informer.start()));
  }

  cached(name: string): Versioned | undefined {
    return this.written.get(name) ?? this.decoded.get(name);
  }

  async read(name: string, options: StoreCallOptions = {}): Promise<Versioned | undefined> {
    try {
      // Raw JSON, as the watch brings it: a write built on it keeps every field (see getJson).
      const lease = await this.call(
        'get',
        (_, signal) => getJson<V1Lease>(this.options.kubeConfig, this.pathOf(name), {}, signal),
        options,
      );
      // Something in front of kube-apiserver answering 200 with another object: not this Lease.
      if ((lease as V1Lease | null)?.metadata?.name !== name)
        throw new StoreUnavailableError(
          `Kubernetes API get of Lease "${name}" answered another object`,
        );
      return fromLease(lease);
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  async replace(
    next: LockState,
    base: Versioned,
    options: StoreCallOptions = {},
  ): Promise<Versioned | 'conflict'> {
    const body = toLease(
      next,
      base.version,
      base.raw as V1Lease | undefined,
      this.options.lineForm,
    );
    const bytes = annotationBytes(body);
    if (bytes > maxAnnotationBytes)
      throw new LockTooLargeError(
        next.name,
        `its annotations would take ${bytes} bytes, over Kubernetes' limit of ${maxAnnotationBytes}`,
      );
    try {
      const path = this.pathOf(next.name);
      const lease = await this.call(
        'update',
        (_, signal) => putLease(this.options.kubeConfig, path, body, signal),
        options,
      );
      const written = fromLease(lease);
      // The watch (or a later write of ours) may already have delivered something newer.
      const newer = [this.decoded.get(next.name), this.written.get(next.name)].some(
        (known) => known && !olderThan(known.version, written.version),
      );
      if (!newer) this.written.set(next.name, written);
      return written;
    } catch (error) {
      // 409: someone wrote since we read. 404: the Lease is gone; both mean "decide again".
      if (statusOf(error) === 409 || statusOf(error) === 404) return 'conflict';
      if (statusOf(error) === 422) throw refusedAsInvalid(next.name, error);
      throw error;
    }
  }

  async ensure(names: readonly string[], options: EnsureOptions = {}): Promise<void> {
    for (const name of names) {
      if (this.decoded.has(name) || (await this.read(name))) continue;
      const floor = (await options.tokenFloor?.(name)) ?? 0;
      const body = toLease(emptyLock(name, floor), undefined);
      const owner = options.owner?.(name);
      if (owner) body.metadata = { ...body.metadata, ownerReferences: [owner] };
      try {
        await this.call(
          'create',
          (o) => this.api.createNamespacedLease({ namespace: this.options.namespace, body }, o),
          {},
        );
      } catch (error) {
        if (statusOf(error) !== 409) throw error;
      }
    }
  }

  /**
   * Makes `owner` the controller owner of the lock's Lease (a Lease made before its `Lock`, or by
   * an earlier version): deleting the `Lock` then deletes the Lease. Keeps every other owner, and
   * the Lease's state: only metadata changes. False when there is no such Lease.
   */
  async adopt(name: string, owner: V1OwnerReference, options: StoreCallOptions = {}) {
    const current = this.decoded.get(name)?.raw as V1Lease | undefined;
    const others = (current?.metadata?.ownerReferences ?? []).filter(
      (ref) => ref.uid !== owner.uid && !ref.controller,
    );
    try {
      await this.call(
        'patch',
        (o) =>
          this.api.patchNamespacedLease(
            {
              name,
              namespace: this.options.namespace,
              body: { metadata: { ownerReferences: [...others, owner] } },
            },
            setHeaderOptions('Content-Type', PatchStrategy.MergePatch, o),
          ),
        options,
      );
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw error;
    }
  }

  /**
   * Deletes the lock's Lease, but only the one the cache holds (uid precondition) and only while
   * its controlling owner is `ownerUid`: a deleted `Lock`'s Lease, never a newer one.
   */
  async remove(name: string, ownerUid: string, options: StoreCallOptions = {}): Promise<void> {
    const lease = this.decoded.get(name)?.raw as V1Lease | undefined;
    const uid = lease?.metadata?.uid;
    const resourceVersion = lease?.metadata?.resourceVersion;
    const owned = lease?.metadata?.ownerReferences?.some(
      (ref) => ref.controller && ref.uid === ownerUid,
    );
    if (!uid || !owned) return;
    try {
      await this.call(
        'delete',
        (o) =>
          this.api.deleteNamespacedLease(
            {
              name,
              namespace: this.options.namespace,
              // Only the Lease judged: not a newer write of it, nor a Lease made since.
              body: { preconditions: { uid, resourceVersion } },
            },
            o,
          ),
        options,
      );
    } catch (error) {
      if (statusOf(error) !== 404 && statusOf(error) !== 409) throw error;
    }
  }

  /** The uid of the `Lock` that controls the lock's Lease, if one does. */
  ownerUid(name: string): string | undefined {
    const lease = this.decoded.get(name)?.raw as V1Lease | undefined;
    return lease?.metadata?.ownerReferences?.find((ref) => ref.controller && ref.kind === 'Lock')
      ?.uid;
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  ready(): boolean {
    return this.informers.every((informer) => informer.hasSynced());
  }

  watching(): boolean {
    return this.informers.every((informer) => informer.isWatching());
  }

  async close(): Promise<void> {
    await Promise.all(this.informers.map((informer) => informer.stop()));
    this.listeners.clear();
  }

  /** The URL path of the lock's Lease. */
  private pathOf(name: string): string {
    return `${leasesPath(this.options.namespace)}/${encodeURIComponent(name)}`;
  }

  private call<T>(
    verb: string,
    fn: Parameters<typeof kubeCall<T>>[1],
    options: StoreCallOptions,
  ): Promise<T> {
    return kubeCall(verb, fn, this.observe, {
      timeoutMs: this.options.requestTimeoutMs,
      signal: options.signal,
    });
  }

  private changed({ type, object }: InformerEvent<V1Lease>): void {
    const name = object.metadata?.name ?? '';
    const version = object.metadata?.resourceVersion;
    const ours = this.written.get(name);
    if (ours !== undefined && !olderThan(version, ours.version)) this.written.delete(name); // the watch caught up with our write (or went past it)
    const prev = this.decoded.get(name)?.state;
    if (type === 'DELETED') this.decoded.delete(name);
    // Our own write coming back: decoded already, from the update's answer (the same object;
    // the uid too, as a Lease made again after an etcd restore could repeat a version).
    else if (ours && ours.version === version && uidOf(ours.raw) === object.metadata?.uid)
      this.decoded.set(name, { ...ours, raw: object });
    else this.decoded.set(name, fromLease(object));
    const next = this.decoded.get(name)?.state;
    notifyListeners(this.listeners, { name, prev, next });
  }
}

/** The URL path of the namespace's Leases. */
const leasesPath = (namespace: string) =>
  `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/leases`;

/** The uid of a decoded Lease (its raw object), if any. */
const uidOf = (raw: unknown) => (raw as V1Lease | undefined)?.metadata?.uid;

/**
 * Whether resourceVersion `a` is older than `b`. Only used to keep a write-through cache entry a
 * little longer, never for correctness (every write is a compare-and-swap): when the versions are
 * not the integers etcd makes them, the answer is "no" and the entry goes.
 */
function olderThan(a: string | undefined, b: string): boolean {
  if (!a || !/^\d+$/.test(a) || !/^\d+$/.test(b)) return false;
  return BigInt(a) < BigInt(b);
}

/** The Lease store of a process: its configured namespace and locks, reporting to `metrics`. */
export function leaseStoreFor(
  kubeConfig: KubeConfig,
  config: {
    NAMESPACE: string;
    LOCKS: readonly string[] | 'labelled';
    KUBE_REQUEST_TIMEOUT_SECONDS: number;
    KUBE_WATCH_TIMEOUT_SECONDS: number;
    WAIT_LINE_FORM: LineForm;
  },
  metrics: KubeMetrics,
): LeaseStore {
  return new LeaseStore({
    kubeConfig,
    namespace: config.NAMESPACE,
    locks: config.LOCKS,
    observe: kubeObserver(metrics),
    onWatchRestart: (reason) => metrics.watchRestarts.inc({ reason }),
    requestTimeoutMs: config.KUBE_REQUEST_TIMEOUT_SECONDS * 1000,
    watchTimeoutSeconds: config.KUBE_WATCH_TIMEOUT_SECONDS,
    lineForm: config.WAIT_LINE_FORM,
  });
}

/**
 * A 422 on a Lease update: too large when every field the API server names is the annotations
 * (the size check before the call counts as it does, so this is rare), otherwise invalid for a
 * reason its message gives (for the logs; callers answer without it).
 */
function refusedAsInvalid(lock: string, error: unknown): Error {
  const { message, fields } = validationOf(error);
  const detail = `the API server refused the Lease as invalid: ${message ?? 'no reason given'}`;
  return fields.length > 0 && fields.every((f) => f === 'metadata.annotations')
    ? new LockTooLargeError(lock, detail, { cause: error })
    : new LockInvalidError(lock, detail, { cause: error });
}
