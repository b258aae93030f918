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

/** The object an Event is about. */
export interface InvolvedObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly uid?: string | undefined;
}

/** A listed lock's Events are about its Lease. */
export const leaseOf = (lock: string): InvolvedObject => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  name: lock,
});

/**
 * core/v1 Events on the lock's Lease, or on its `Lock` when locks are declared (so `kubectl
 * describe lock` shows them); `--field-selector involvedObject.name=<lock>` finds them either way.
 */
export class KubeEventRecorder implements EventRecorder {
  private readonly api: CoreV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
    private readonly instance: string,
    private readonly observe: KubeObserver = ignoreCalls,
    private readonly involved: (lock: string) => InvolvedObject = leaseOf,
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
      involvedObject: { ...this.involved(lock), namespace: this.namespace },
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
