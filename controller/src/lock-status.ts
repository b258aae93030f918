import {
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import { heldSeconds, isHeld, type LockState, type StoreCallOptions } from '@retrospective/lock';
import {
  ignoreCalls,
  kubeCall,
  lockGroup,
  lockPlural,
  lockVersion,
  type KubeObserver,
  type LockCondition,
  type LockObject,
  type LockStatus,
} from '@retrospective/runtime';

const duration = (seconds: number) =>
  seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;

export interface StatusInput {
  /** The Lock as the watch last brought it, with the status last shown. */
  readonly object: Pick<LockObject, 'metadata' | 'status'>;
  /** Its Lease's state; undefined while the Lease does not exist. */
  readonly state: LockState | undefined;
  /** Waiters that still count. */
  readonly waiting: number;
  readonly heldTooLongSeconds: number;
  readonly now: Date;
}

/**
 * The status a Lock should show for its Lease: holder, since, token, waiting, the last release,
 * and the `Ready` and `HeldTooLong` conditions. A condition's `lastTransitionTime` moves only
 * when its status does, so an unchanged lock computes an unchanged status (no write).
 */
export function desiredStatus(input: StatusInput): LockStatus {
  const { object, state, waiting, heldTooLongSeconds, now } = input;
  const generation = object.metadata.generation;
  const previous = object.status?.conditions ?? [];
  const condition = (
    type: LockCondition['type'],
    status: LockCondition['status'],
    reason: string,
    message: string,
  ): LockCondition => {
    const before = previous.find((c) => c.type === type);
    return {
      type,
      status,
      ...(generation === undefined ? {} : { observedGeneration: generation }),
      lastTransitionTime:
        before && before.status === status ? before.lastTransitionTime : now.toISOString(),
      reason,
      message,
    };
  };
  const ready = state
    ? condition('Ready', 'True', 'LeaseInStep', `Lease ${object.metadata.name} holds the lock`)
    : condition('Ready', 'False', 'LeaseMissing', 'the controller is creating its Lease');
  const held = state && isHeld(state) ? (heldSeconds(state, now) ?? 0) : undefined;
  const tooLong =
    state && isHeld(state) && held !== undefined && held >= heldTooLongSeconds
      ? condition(
          'HeldTooLong',
          'True',
          'HeldTooLong',
          `${state.holder} has held it for over ${duration(heldTooLongSeconds)} (token ${state.token})`,
        )
      : condition('HeldTooLong', 'False', held === undefined ? 'Free' : 'WithinThreshold', '');
  const status: LockStatus = {
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    conditions: [ready, tooLong],
  };
  if (!state) return status;
  const lastRelease =
    state.releasedAt || state.releasedBy
      ? {
          ...(state.releasedBy ? { user: state.releasedBy } : {}),
          ...(state.releasedAt ? { at: state.releasedAt.toISOString() } : {}),
          ...(state.releaseReason ? { reason: state.releaseReason } : {}),
        }
      : undefined;
  return {
    ...status,
    ...(isHeld(state) ? { holder: state.holder, since: state.acquiredAt.toISOString() } : {}),
    token: state.token,
    waiting,
    ...(lastRelease ? { lastRelease } : {}),
  };
}

/** Whether two statuses say the same thing (key order aside). */
export function sameStatus(a: LockStatus | undefined, b: LockStatus | undefined): boolean {
  return canonical(a ?? {}) === canonical(b ?? {});
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => x.localeCompare(y)))
      : v,
  );
}

/** Writes a Lock's status. */
export interface StatusWriter {
  write(name: string, status: LockStatus, options?: StoreCallOptions): Promise<void>;
}

const statusFields = [
  'observedGeneration',
  'holder',
  'since',
  'token',
  'waiting',
  'lastRelease',
  'conditions',
] as const satisfies readonly (keyof LockStatus)[];

/** Merge-patches `/status` of Lock objects; fields the new status lacks are removed. */
export class KubeStatusWriter implements StatusWriter {
  private readonly api: CustomObjectsApi;

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
    private readonly observe: KubeObserver = ignoreCalls,
  ) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
  }

  async write(name: string, status: LockStatus, options: StoreCallOptions = {}): Promise<void> {
    const body = {
      status: Object.fromEntries(statusFields.map((field) => [field, status[field] ?? null])),
    };
    await kubeCall(
      'patch',
      (o) =>
        this.api.patchNamespacedCustomObjectStatus(
          {
            group: lockGroup,
            version: lockVersion,
            namespace: this.namespace,
            plural: lockPlural,
            name,
            body,
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch, o),
        ),
      this.observe,
      { signal: options.signal },
    );
  }
}
