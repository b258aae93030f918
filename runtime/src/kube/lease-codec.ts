import { V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import {
  defaultWaiterTtlSeconds,
  type LockState,
  type ReleaseReason,
  type Versioned,
  type Waiter,
} from '@retrospective/lock';

const prefix = 'retrospective.dev/';
export const annotations = {
  content: `${prefix}content`,
  lastEditor: `${prefix}last-editor`,
  lastEditedAt: `${prefix}last-edited-at`,
  releasedBy: `${prefix}released-by`,
  releasedAt: `${prefix}released-at`,
  releaseReason: `${prefix}release-reason`,
  queue: `${prefix}queue`,
  grantedTo: `${prefix}granted-to`,
  unclaimed: `${prefix}unclaimed-for`,
} as const;

/** Kubernetes' limit on an object's annotations, keys and values together (apimachinery). */
export const maxAnnotationBytes = 256 * 1024;

/** The bytes an object's annotations count for against `maxAnnotationBytes`. */
export function annotationBytes(object: { metadata?: { annotations?: Record<string, string> } }) {
  return Object.entries(object.metadata?.annotations ?? {}).reduce(
    (sum, [key, value]) => sum + Buffer.byteLength(key) + Buffer.byteLength(value),
    0,
  );
}

/** Marks lock Leases; selecting on it leaves out the controller's leader-election Lease. */
export const lockLabel = `${prefix}lock`;

const reasons: readonly ReleaseReason[] = ['released', 'expired', 'forced'];

function date(value: Date | string | undefined): Date | undefined {
  if (value === undefined || value === '') return undefined;
  const parsed = new Date(value);
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

/** The waiting line from its annotation; anything unreadable in it is left out, never fatal. */
function parseQueue(value: string | undefined): Waiter[] | undefined {
  if (!value) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (!Array.isArray(raw)) return undefined;
  const line = raw.flatMap((entry: unknown) => {
    const e = entry as Partial<
      Record<'id' | 'user' | 'since' | 'expires' | 'ttl' | 'beat' | 'hold' | 'ho', unknown>
    >;
    const since = date(typeof e.since === 'string' ? e.since : undefined);
    const expires = date(typeof e.expires === 'string' ? e.expires : undefined);
    if (typeof e.id !== 'string' || typeof e.user !== 'string' || !since || !expires) return [];
    const ttl = typeof e.ttl === 'number' && e.ttl > 0 && e.ttl <= 3600 ? e.ttl : undefined;
    const beat = Number.isSafeInteger(e.beat) ? (e.beat as number) : undefined;
    const hold = seconds(e.hold);
    return [
      {
        id: e.id,
        user: e.user,
        since,
        expires,
        ...(ttl ? { ttlSeconds: ttl } : {}),
        ...(beat !== undefined ? { beat } : {}),
        ...(hold ? { holdTimeoutSeconds: hold } : {}),
        ...(e.ho === 1 ? { takesHandOver: true } : {}),
      },
    ];
  });
  return line.length ? line : undefined;
}

/** A whole number of seconds from 1 to a week, or undefined. */
function seconds(value: unknown): number | undefined {
  return Number.isSafeInteger(value) && (value as number) > 0 && (value as number) <= 604_800
    ? (value as number)
    : undefined;
}

/** `<seconds>/<token>` from the annotation, when it is about the hold of `token`. */
function unclaimed(value: string | undefined, token: number): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\/(\d+)$/.exec(value ?? '');
  if (!match || Number(match[2]) !== token) return undefined;
  const s = Number(match[1]);
  return s > 0 && s <= 604_800 ? s : undefined;
}

const micro = (value: Date | undefined) => (value ? new V1MicroTime(value.getTime()) : undefined);

export function fromLease(lease: V1Lease): Versioned {
  const a = lease.metadata?.annotations ?? {};
  const spec = lease.spec ?? {};
  const reason = a[annotations.releaseReason] as ReleaseReason | undefined;
  const state: LockState = {
    name: lease.metadata?.name ?? '',
    holder: spec.holderIdentity || undefined,
    acquiredAt: date(spec.acquireTime),
    renewedAt: date(spec.renewTime),
    token: spec.leaseTransitions ?? 0,
    holdTimeoutSeconds: spec.leaseDurationSeconds || undefined,
    content: a[annotations.content] ?? '',
    lastEditor: a[annotations.lastEditor] || undefined,
    lastEditedAt: date(a[annotations.lastEditedAt]),
    releasedBy: a[annotations.releasedBy] || undefined,
    releasedAt: date(a[annotations.releasedAt]),
    releaseReason: reason && reasons.includes(reason) ? reason : undefined,
    queue: parseQueue(a[annotations.queue]),
    grantedTo: spec.holderIdentity ? a[annotations.grantedTo] || undefined : undefined,
    unclaimedSeconds: unclaimed(a[annotations.unclaimed], spec.leaseTransitions ?? 0),
  };
  return { state, version: lease.metadata?.resourceVersion ?? '', raw: lease };
}

/**
 * The Lease that stores `state`, built on `base` (the exact Lease that was read) so labels,
 * annotations, owner references and finalizers written by others survive. `version` makes the
 * replace a compare-and-swap; without one (undefined) the Lease is for a create.
 *
 * A replace sends `managedFields: [{}]`, Kubernetes' documented way to clear them: kube-apiserver
 * then keeps no field ownership on the Lease and skips tracking it on the update, which cost it
 * about a third of its CPU per update of a lock's Lease, on the hand-over's critical path
 * (ADR 14).
 */
export function toLease(state: LockState, version: string | undefined, base?: V1Lease): V1Lease {
  const meta = base?.metadata ?? {};
  const ours: Record<string, string | undefined> = {
    [annotations.content]: state.content,
    [annotations.lastEditor]: state.lastEditor,
    [annotations.lastEditedAt]: state.lastEditedAt?.toISOString(),
    [annotations.releasedBy]: state.releasedBy,
    [annotations.releasedAt]: state.releasedAt?.toISOString(),
    [annotations.releaseReason]: state.releaseReason,
    [annotations.queue]: state.queue?.length
      ? JSON.stringify(
          state.queue.map((w) => ({
            id: w.id,
            user: w.user,
            since: w.since.toISOString(),
            expires: w.expires.toISOString(),
            // Every reader takes a missing `ttl` as the default: the line is most of a Lease's
            // bytes, and every byte of it is decoded and encoded on every hand-over.
            ...(w.ttlSeconds && w.ttlSeconds !== defaultWaiterTtlSeconds
              ? { ttl: w.ttlSeconds }
              : {}),
            ...(w.beat !== undefined ? { beat: w.beat } : {}),
            ...(w.holdTimeoutSeconds ? { hold: w.holdTimeoutSeconds } : {}),
            ...(w.takesHandOver ? { ho: 1 } : {}),
          })),
        )
      : undefined,
    [annotations.grantedTo]: state.grantedTo,
    // Tied to the hold it is about: a replica of an earlier version keeps annotations it does not
    // know, and must not carry this one over to a later hold.
    [annotations.unclaimed]:
      state.unclaimedSeconds !== undefined && state.holder
        ? `${state.unclaimedSeconds}/${state.token}`
        : undefined,
  };
  const others = Object.entries(meta.annotations ?? {}).filter(([key]) => !(key in ours));
  const a = Object.fromEntries(
    [...others, ...Object.entries(ours)].filter((e): e is [string, string] => e[1] !== undefined),
  );
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      ...meta,
      managedFields: version === undefined ? undefined : [{}],
      name: state.name,
      labels: { ...meta.labels, [lockLabel]: 'true', 'app.kubernetes.io/part-of': 'retrospective' },
      annotations: a,
      resourceVersion: version,
    },
    spec: {
      holderIdentity: state.holder,
      acquireTime: micro(state.acquiredAt),
      renewTime: micro(state.renewedAt),
      leaseDurationSeconds: state.holdTimeoutSeconds,
      leaseTransitions: state.token,
    },
  };
}
