import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import {
  appendBounded,
  StoreUnavailableError,
  tokenFloor,
  type HistoryEntry,
  type HistoryStore,
  type StoreCallOptions,
} from '@retrospective/lock';
import { ignoreCalls, kubeCall, statusOf, type KubeObserver } from './client.js';
import { Informer } from './informer.js';

const key = 'releases.json';
/** The highest token a lock handed out, kept on its history ConfigMap across the Lease's deletion. */
const floorAnnotation = 'retrospective.dev/token-floor';
export const historyName = (lock: string) => `${lock}-history`;
/** Marks history ConfigMaps (its value names the lock). */
const historyLabel = 'retrospective.dev/history-of';

/** The entries stored in a history ConfigMap; a damaged one reads as empty, never as an error. */
export function parseHistory(map: V1ConfigMap | undefined): HistoryEntry[] {
  let value: unknown;
  try {
    value = JSON.parse(map?.data?.[key] ?? '[]');
  } catch {
    return [];
  }
  // A hand-edited entry of the wrong shape is left out, not served.
  return Array.isArray(value) ? value.filter(isEntry) : [];
}

function isEntry(value: unknown): value is HistoryEntry {
  const e = value as Partial<Record<keyof HistoryEntry, unknown>> | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    Number.isSafeInteger(e.token) &&
    typeof e.releasedBy === 'string' &&
    typeof e.releasedAt === 'string' &&
    typeof e.reason === 'string' &&
    typeof e.content === 'string' &&
    (e.lastEditor === undefined || typeof e.lastEditor === 'string')
  );
}

/** The token floor a history ConfigMap records: its annotation, or its releases' tokens. */
export function floorOf(map: V1ConfigMap | undefined): number {
  const recorded = Number(map?.metadata?.annotations?.[floorAnnotation] ?? 0);
  return tokenFloor(Number.isSafeInteger(recorded) ? recorded : 0, parseHistory(map));
}

export interface ConfigMapHistoryOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly limit: number;
  readonly observe?: KubeObserver | undefined;
  readonly maxBytes?: number;
}

/** The history of each lock in a ConfigMap `<lock>-history`, written with compare-and-swap. */
export class ConfigMapHistory implements HistoryStore {
  private readonly api: CoreV1Api;
  private readonly observe: KubeObserver;

  constructor(private readonly options: ConfigMapHistoryOptions) {
    this.api = options.kubeConfig.makeApiClient(CoreV1Api);
    this.observe = options.observe ?? ignoreCalls;
  }

  async list(lock: string): Promise<readonly HistoryEntry[]> {
    return parseHistory(await this.read(lock, {}));
  }

  async floor(lock: string): Promise<number> {
    return floorOf(await this.read(lock, {}));
  }

  async append(lock: string, entry: HistoryEntry, options: StoreCallOptions = {}): Promise<void> {
    const { limit, maxBytes = 900 * 1024 } = this.options;
    await this.update(lock, options, (current) => ({
      data: { [key]: JSON.stringify(appendBounded(parseHistory(current), entry, limit, maxBytes)) },
    }));
  }

  async raiseFloor(lock: string, token: number, options: StoreCallOptions = {}): Promise<void> {
    await this.update(lock, options, (current) =>
      token > floorOf(current) ? { annotations: { [floorAnnotation]: String(token) } } : undefined,
    );
  }

  /**
   * Changes the lock's ConfigMap (creating it when missing) with compare-and-swap, retrying on
   * conflicts; `change` returns the data and annotations to merge in, or undefined for nothing.
   */
  private async update(
    lock: string,
    options: StoreCallOptions,
    change: (
      current: V1ConfigMap | undefined,
    ) => { data?: Record<string, string>; annotations?: Record<string, string> } | undefined,
  ): Promise<void> {
    const { namespace } = this.options;
    const name = historyName(lock);
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.read(lock, options);
      const merge = change(current);
      if (!merge) return;
      const body: V1ConfigMap = {
        ...current,
        metadata: {
          ...current?.metadata,
          managedFields: undefined,
          name,
          namespace,
          labels: {
            ...current?.metadata?.labels,
            'app.kubernetes.io/part-of': 'retrospective',
            [historyLabel]: lock,
          },
          annotations: { ...current?.metadata?.annotations, ...merge.annotations },
        },
        data: { ...current?.data, ...merge.data },
      };
      try {
        if (current)
          await this.call(
            'update',
            (o) => this.api.replaceNamespacedConfigMap({ name, namespace, body }, o),
            options,
          );
        else
          await this.call(
            'create',
            (o) => this.api.createNamespacedConfigMap({ namespace, body }, o),
            options,
          );
        return;
      } catch (error) {
        if (statusOf(error) !== 409) throw error;
      }
    }
    throw Object.assign(new Error(`history of ${lock}: too many conflicting writes`), {
      code: 409,
    });
  }

  private async read(lock: string, options: StoreCallOptions): Promise<V1ConfigMap | undefined> {
    const name = historyName(lock);
    try {
      return await this.call(
        'get',
        (o) => this.api.readNamespacedConfigMap({ name, namespace: this.options.namespace }, o),
        options,
      );
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  private call<T>(verb: string, fn: Parameters<typeof kubeCall<T>>[1], options: StoreCallOptions) {
    return kubeCall(verb, fn, this.observe, { signal: options.signal });
  }
}

export interface WatchedHistoryOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** The locks to follow, each with a watch of its own; `labelled`: one watch for all of them. */
  readonly locks: readonly string[] | 'labelled';
  readonly observe?: KubeObserver | undefined;
  readonly watchTimeoutSeconds?: number | undefined;
}

/**
 * Serves each lock's history from a watch of its ConfigMap, so readers cost the API server
 * nothing however many there are. One watch per lock, selected by name, so RBAC can limit it to
 * exactly those ConfigMaps.
 */
export class WatchedHistory {
  private readonly informers = new Map<string, Informer<V1ConfigMap>>();
  /** `labelled`: the one informer of every history ConfigMap. */
  private readonly all: Informer<V1ConfigMap> | undefined;
  /** Per lock, the entries of the ConfigMap version last parsed: parsed once per version. */
  private readonly parsed = new Map<
    string,
    { version: string; entries: readonly HistoryEntry[] }
  >();

  constructor(options: WatchedHistoryOptions) {
    const { kubeConfig, namespace } = options;
    const api = kubeConfig.makeApiClient(CoreV1Api);
    const informer = (selector: { fieldSelector: string } | { labelSelector: string }) =>
      new Informer<V1ConfigMap>({
        kubeConfig,
        path: `/api/v1/namespaces/${namespace}/configmaps`,
        list: (o) => api.listNamespacedConfigMap({ namespace, ...selector }, o),
        ...selector,
        observe: options.observe ?? ignoreCalls,
        watchTimeoutSeconds: options.watchTimeoutSeconds,
      });
    if (options.locks === 'labelled') {
      this.all = informer({ labelSelector: historyLabel });
      return;
    }
    for (const lock of options.locks)
      this.informers.set(lock, informer({ fieldSelector: `metadata.name=${historyName(lock)}` }));
  }

  async start(): Promise<void> {
    await Promise.all(this.watches().map((informer) => informer.start()));
  }

  private watches(): Informer<V1ConfigMap>[] {
    return this.all ? [this.all] : [...this.informers.values()];
  }

  /** True once every history ConfigMap watch has listed what there is. */
  synced(): boolean {
    return this.watches().every((informer) => informer.hasSynced());
  }

  /** The lock's history ConfigMap (none: nothing recorded yet); throws until it was listed. */
  private loaded(lock: string): V1ConfigMap | undefined {
    if (!this.synced()) throw new StoreUnavailableError('the lock history is not loaded yet');
    return (this.all ?? this.informers.get(lock))?.get(historyName(lock));
  }

  /**
   * The lock's releases, oldest first; empty until the first release was recorded. The same array
   * while the ConfigMap is unchanged. Throws StoreUnavailableError until the ConfigMaps were first
   * listed (a replica just started, or may not read them): an empty history would then be a lie.
   */
  list(lock: string): readonly HistoryEntry[] {
    const map = this.loaded(lock);
    const version = map?.metadata?.resourceVersion ?? '';
    const known = this.parsed.get(lock);
    if (known?.version === version) return known.entries;
    const entries = Object.freeze(parseHistory(map));
    this.parsed.set(lock, { version, entries });
    return entries;
  }

  /** The highest token the lock is known to have handed out. */
  floor(lock: string): number {
    return floorOf(this.loaded(lock));
  }

  async stop(): Promise<void> {
    await Promise.all(this.watches().map((informer) => informer.stop()));
  }
}
