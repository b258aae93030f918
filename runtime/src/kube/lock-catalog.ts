import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { CatalogListener, LockCatalog, LockPolicy } from '@retrospective/lock';
import { ignoreCalls, type KubeObserver } from './client.js';
import { Informer, type ObjectList } from './informer.js';
import {
  lockGroup,
  lockObject,
  lockPlural,
  lockVersion,
  type LockObject,
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

type RawLock = { metadata?: { name?: string; resourceVersion?: string } } & Record<string, unknown>;

/** A Lock's policy: its spec without what only people read. */
export const policyOf = ({ description: _, ...policy }: LockSpec): LockPolicy => policy;

const samePolicy = (a: LockPolicy, b: LockPolicy) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The `Lock` objects of one namespace, watched: a lock declared with `kubectl apply` is known as
 * soon as the watch brings it, and forgotten when it is deleted (or marked for deletion).
 */
export class KubeLockCatalog implements LockCatalog {
  private readonly informer: Informer<RawLock>;
  private readonly locks = new Map<string, { object: LockObject; policy: LockPolicy }>();
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
  object(name: string): LockObject | undefined {
    return this.locks.get(name)?.object;
  }

  subscribe(listener: CatalogListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(type: 'ADDED' | 'MODIFIED' | 'DELETED', raw: RawLock): void {
    const name = raw.metadata?.name ?? '';
    const known = this.locks.get(name);
    const parsed = lockObject.safeParse(raw);
    if (!parsed.success)
      this.options.onInvalid?.(name, parsed.error.issues.map((i) => i.message).join('; '));
    if (type === 'DELETED' || !parsed.success || parsed.data.metadata.deletionTimestamp) {
      if (!known) return;
      this.locks.delete(name);
      this.tell({ name, policy: undefined });
      return;
    }
    const object = parsed.data;
    const policy = policyOf(object.spec);
    this.locks.set(name, { object, policy });
    // A new generation is told even when the policy stayed (its status names the generation).
    const same =
      known &&
      samePolicy(known.policy, policy) &&
      known.object.metadata.generation === object.metadata.generation;
    if (!same) this.tell({ name, policy });
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
