import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { kubeCall, statusOf, type KubeObserver } from '@retrospective/lock';
import { appendBounded, type HistoryEntry, type HistoryStore } from './history.js';

const key = 'releases.json';
export const historyName = (lock: string) => `${lock}-history`;

/** The history of each lock in a ConfigMap `<lock>-history`, updated with compare-and-swap. */
export class ConfigMapHistory implements HistoryStore {
  private readonly api: CoreV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
    private readonly limit: number,
    private readonly observe: KubeObserver = () => undefined,
    private readonly maxBytes = 900 * 1024,
  ) {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
  }

  async list(lock: string): Promise<HistoryEntry[]> {
    const map = await this.read(lock);
    return map ? parse(map) : [];
  }

  async append(lock: string, entry: HistoryEntry): Promise<void> {
    const { namespace } = this;
    const name = historyName(lock);
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.read(lock);
      const entries = appendBounded(
        current ? parse(current) : [],
        entry,
        this.limit,
        this.maxBytes,
      );
      const body: V1ConfigMap = {
        metadata: {
          ...current?.metadata,
          name,
          namespace,
          labels: {
            'app.kubernetes.io/part-of': 'retrospective',
            'retrospective.dev/history-of': lock,
          },
        },
        data: { [key]: JSON.stringify(entries) },
      };
      try {
        if (current)
          await kubeCall(
            'update',
            (o) => this.api.replaceNamespacedConfigMap({ name, namespace, body }, o),
            this.observe,
          );
        else
          await kubeCall(
            'create',
            (o) => this.api.createNamespacedConfigMap({ namespace, body }, o),
            this.observe,
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

  private async read(lock: string): Promise<V1ConfigMap | undefined> {
    const name = historyName(lock);
    try {
      return await kubeCall(
        'get',
        (o) => this.api.readNamespacedConfigMap({ name, namespace: this.namespace }, o),
        this.observe,
      );
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }
}

function parse(map: V1ConfigMap): HistoryEntry[] {
  try {
    const value: unknown = JSON.parse(map.data?.[key] ?? '[]');
    return Array.isArray(value) ? (value as HistoryEntry[]) : [];
  } catch {
    return [];
  }
}
