import { randomBytes } from 'node:crypto';
import { CoreV1Api, V1MicroTime, type KubeConfig } from '@kubernetes/client-node';
import type { StoreCallOptions } from '@retrospective/lock';
import { ignoreCalls, kubeCall, type KubeObserver } from '@retrospective/runtime';
import type { Logger } from 'pino';

export type EventType = 'Normal' | 'Warning';

/** Records what happened to a lock where operators look: `kubectl get events`. */
export interface EventRecorder {
  record(
    lock: string,
    type: EventType,
    reason: string,
    message: string,
    options?: StoreCallOptions,
  ): Promise<void>;
}

export const component = 'retrospective-controller';

/** core/v1 Events on the lock's Lease, so `--field-selector involvedObject.name=<lock>` finds them. */
export class KubeEventRecorder implements EventRecorder {
  private readonly api: CoreV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
    private readonly instance: string,
    private readonly observe: KubeObserver = ignoreCalls,
  ) {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
  }

  async record(
    lock: string,
    type: EventType,
    reason: string,
    message: string,
    options: StoreCallOptions = {},
  ): Promise<void> {
    const now = new Date();
    const body = {
      metadata: {
        name: `${lock}.${now.getTime().toString(16)}${randomBytes(2).toString('hex')}`,
        namespace: this.namespace,
      },
      involvedObject: {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        name: lock,
        namespace: this.namespace,
      },
      type,
      reason,
      message,
      source: { component },
      reportingComponent: component,
      reportingInstance: this.instance,
      action: reason,
      firstTimestamp: now,
      lastTimestamp: now,
      eventTime: new V1MicroTime(now.getTime()),
      count: 1,
    };
    await kubeCall(
      'create',
      (o) => this.api.createNamespacedEvent({ namespace: this.namespace, body }, o),
      this.observe,
      { signal: options.signal },
    );
  }
}

/** Keeps events in memory (make run, unit tests). */
export class MemoryEventRecorder implements EventRecorder {
  readonly events: { lock: string; type: EventType; reason: string; message: string }[] = [];

  async record(lock: string, type: EventType, reason: string, message: string): Promise<void> {
    this.events.push({ lock, type, reason, message });
  }
}

/** Writes events to the log, where a single process (make run) keeps them. */
export class LogEventRecorder implements EventRecorder {
  constructor(private readonly logger: Logger) {}

  async record(lock: string, type: EventType, reason: string, message: string): Promise<void> {
    this.logger.info({ lock, type, reason }, message);
  }
}
