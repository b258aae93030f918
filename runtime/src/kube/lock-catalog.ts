import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { CatalogListener, LockCatalog, LockPolicy } from '@retrospective/lock';
import { ignoreCalls, type KubeObserver } from './client.js';
import { Informer, type ObjectList } from './informer.js';
import {
  lockGroup,
  lockObject,
  lockPlural,
  lockSpec,
  lockVersion,
  type LockSpec,
} from './lock-resource.js';

export interface KubeLockCatalogOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly observe?: KubeObserver | undefined;
  /** Told of a `Lock` whose object cannot be read (never expected: the CRD validates it). */
  readonly onInvalid?: ((name: string, problem: string) => void) | undefined;
  readonly requestTimeoutMs?: number | undefined;
  readonly watchTimeoutSeconds?: number | undefined;
}

type RawLock = KubernetesObject & Record<string, unknown>;

/**
 * What serving a lock needs of its object, read leniently: the status is the controller's own and
 * not read here, and text only people read has no bound here (zod counts UTF-16 units where the
 * CRD counts characters).
 */
const servedLock = lockObject.extend({
  spec: lockSpec.extend({ description: z.string().optional() }).default(() => lockSpec.parse({})),
  status: z.unknown().optional(),
});

export type ServedLock = z.infer<typeof servedLock>;

/** A Lock's policy: its spec without what only people read. */
export const policyOf = ({ description: _, ...policy }: LockSpec): LockPolicy => policy;

const samePolicy = (a: LockPolicy, b: LockPolicy) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The `Lock` objects of one namespace, watched: a lock declared with `kubectl apply` is known as
 * soon as the watch brings it, and forgotten when it is deleted (or marked for deletion).
 */
export class KubeLockCatalog implements LockCatalog {
  private readonly informer: Informer<RawLock>;
  private readonly locks = new Map<string, { object: ServedLock; policy: LockPolicy }>();
  private readonly listeners = new Set<CatalogListener>();

  constructor(private readonly options: KubeLockCatalogOptions) {
    const { kubeConfig, namespace } = options;
    const api = kubeConfig.makeApiClient(CustomObjectsApi);
    const group = lockGroup;
    const version = lockVersion;
    const plural = lockPlural;
    this.informer = new Informer<RawLock>({
      kubeConfig,
      path: `/apis/${group}/${version}/namespaces/${namespace}/${plural}`,
      list: async (o) =>
        (await api.listNamespacedCustomObject(
          { group, version, namespace, plural },
          o,
        )) as ObjectList<RawLock>,
      observe: options.observe ?? ignoreCalls,
      requestTimeoutMs: options.requestTimeoutMs,
      watchTimeoutSeconds: options.watchTimeoutSeconds,
    });
    this.informer.on(({ type, object }) => this.changed(type, object));
  }

  /** Starts the watch; resolves once the first listing is in. */
  start(): Promise<void> {
    return this.informer.start();
  }

  ready(): boolean {
    return this.informer.hasSynced();
  }

  watching(): boolean {
    return this.informer.isWatching();
  }

  async close(): Promise<void> {
    await this.informer.stop();
    this.listeners.clear();
  }

  names(): readonly string[] {
    return [...this.locks.keys()];
  }

  has(name: string): boolean {
    return this.locks.has(name);
  }

  policy(name: string): LockPolicy | undefined {
    return this.locks.get(name)?.policy;
  }

  /** The `Lock` object as last seen (its uid names it as the owner of its Lease). */
  object(name: string): ServedLock | undefined {
    return this.locks.get(name)?.object;
  }

  subscribe(listener: CatalogListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(type: 'ADDED' | 'MODIFIED' | 'DELETED', raw: RawLock): void {
    const name = raw.metadata?.name ?? '';
    const known = this.locks.get(name);
    if (type === 'DELETED' || raw.metadata?.deletionTimestamp) {
      if (known) this.forget(name);
      return;
    }
    const parsed = servedLock.safeParse(raw);
    if (!parsed.success) {
      // The API server validated it, so this process is older or stricter than the CRD: keep
      // serving the lock as last understood rather than treat it as deleted.
      this.options.onInvalid?.(name, parsed.error.issues.map((i) => i.message).join('; '));
      return;
    }
    const object = parsed.data;
    // Deleted and declared again (a watch gap can fold both into one event): a new lock.
    if (known && known.object.metadata.uid !== object.metadata.uid) this.forget(name);
    const before = this.locks.get(name);
    const policy = policyOf(object.spec);
    this.locks.set(name, { object, policy });
    // A new generation is told even when the policy stayed (its status names the generation).
    const same =
      before &&
      samePolicy(before.policy, policy) &&
      before.object.metadata.generation === object.metadata.generation;
    if (!same) this.tell({ name, policy });
  }

  private forget(name: string): void {
    this.locks.delete(name);
    this.tell({ name, policy: undefined });
  }

  private tell(change: { name: string; policy: LockPolicy | undefined }): void {
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (error) {
        process.emitWarning(`a listener of lock ${change.name} failed: ${String(error)}`);
      }
    }
  }
}

/**
 * The `Lock` catalog of a process when its locks are declared (`LOCK_SOURCE=resources`): its
 * namespace, timeouts, and a warning for a `Lock` it cannot read. Undefined with `LOCKS`.
 */
export function lockCatalogFor(
  kubeConfig: KubeConfig,
  config: {
    NAMESPACE: string;
    LOCK_SOURCE: 'env' | 'resources';
    KUBE_REQUEST_TIMEOUT_SECONDS: number;
    KUBE_WATCH_TIMEOUT_SECONDS: number;
  },
  observe: KubeObserver,
  logger: Pick<Logger, 'warn'>,
): KubeLockCatalog | undefined {
  if (config.LOCK_SOURCE !== 'resources') return undefined;
  return new KubeLockCatalog({
    kubeConfig,
    namespace: config.NAMESPACE,
    observe,
    requestTimeoutMs: config.KUBE_REQUEST_TIMEOUT_SECONDS * 1000,
    watchTimeoutSeconds: config.KUBE_WATCH_TIMEOUT_SECONDS,
    onInvalid: (lock, problem) =>
      logger.warn({ lock, problem }, 'a Lock this version cannot read; serving it as last read'),
  });
}
