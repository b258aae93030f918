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
  line: `${prefix}line`,
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

/**
 * The line's first form (`retrospective.dev/queue`, an array of objects), which replicas of
 * versions before ADR 16 read and write; anything unreadable in it is left out, never fatal.
 */
function parseQueue(value: string | undefined): Waiter[] {
  const raw = parseArray(value);
  return raw.flatMap((entry: unknown) => {
    if (!entry || typeof entry !== 'object') return [];
    const e = entry as Partial<
      Record<'id' | 'user' | 'since' | 'expires' | 'ttl' | 'beat' | 'hold' | 'ho', unknown>
    >;
    const since = date(typeof e.since === 'string' ? e.since : undefined);
    const expires = date(typeof e.expires === 'string' ? e.expires : undefined);
    if (typeof e.id !== 'string' || typeof e.user !== 'string' || !since || !expires) return [];
    const ttl = ttlOf(e.ttl);
    const beat = beatOf(e.beat);
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
        firstForm: true,
      },
    ];
  });
}

/**
 * The line's second form (`retrospective.dev/line`, ADR 16): one array per entry,
 * `[id, user, since (ms since 1970), expires (ms after since), beat (null for none), hold (s, 0
 * for none), ttl (s)]`, the last two left out when they are the defaults. Every replica that
 * writes it answers hand-overs. Elements after these are ignored (and not written back); anything unreadable is
 * left out, never fatal.
 */
function parseLine(value: string | undefined): Waiter[] {
  return parseArray(value).flatMap((entry: unknown) => {
    if (!Array.isArray(entry)) return [];
    const [id, user, at, after, beat, hold, ttl] = entry as unknown[];
    if (typeof id !== 'string' || typeof user !== 'string') return [];
    // `after` may be negative: a renewal sets `expires` by a clock that may have stepped back.
    if (!Number.isSafeInteger(at) || !Number.isSafeInteger(after)) return [];
    const since = new Date(at as number);
    const expires = new Date((at as number) + (after as number));
    if (Number.isNaN(since.getTime()) || Number.isNaN(expires.getTime())) return [];
    const timeout = seconds(hold);
    const ttlSeconds = ttlOf(ttl);
    const beats = beatOf(beat);
    return [
      {
        id,
        user,
        since,
        expires,
        ...(ttlSeconds ? { ttlSeconds } : {}),
        ...(beats !== undefined ? { beat: beats } : {}),
        ...(timeout ? { holdTimeoutSeconds: timeout } : {}),
        takesHandOver: true,
      },
    ];
  });
}

/** An entry's TTL: whole seconds, 1 to an hour (WAIT_QUEUE_TTL_SECONDS' range). */
const ttlOf = (value: unknown) =>
  Number.isSafeInteger(value) && (value as number) > 0 && (value as number) <= 3600
    ? (value as number)
    : undefined;

/** A renewal count: a whole number from 0. */
const beatOf = (value: unknown) =>
  Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : undefined;

function parseArray(value: string | undefined): unknown[] {
  if (!value) return [];
  try {
    const raw: unknown = JSON.parse(value);
    return Array.isArray(raw) ? raw : [];
  } catch {
    return [];
  }
}

/**
 * Both forms as one line, each form's order kept, the two merged by when each waiter came (they
 * are both kept in that order; ADR 10). An id found twice counts once, where it is first.
 */
function mergeLines(first: Waiter[], second: Waiter[]): Waiter[] | undefined {
  if (!first.length && !second.length) return undefined;
  const line: Waiter[] = [];
  const ids = new Set<string>();
  let i = 0;
  let j = 0;
  for (;;) {
    const a = first[i];
    const b = second[j];
    const next = a && (!b || a.since.getTime() <= b.since.getTime()) ? a : b;
    if (!next) return line;
    if (next === a) i++;
    else j++;
    if (ids.has(next.id)) continue;
    ids.add(next.id);
    line.push(next);
  }
}

/** How the line is written: `short`, the second form where its replica reads it; `objects`, all first. */
export type LineForm = 'short' | 'objects';

/**
 * The TTL an entry is written with: none when it is the default, which every reader takes a
 * missing one to be (ADR 15).
 */
const writtenTtl = (w: Waiter) =>
  w.ttlSeconds && w.ttlSeconds !== defaultWaiterTtlSeconds ? w.ttlSeconds : undefined;

/** Whether an entry goes in the second form: its replica reads it (see `Waiter.firstForm`). */
const inSecondForm = (w: Waiter) => w.takesHandOver === true && !w.firstForm;

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
    queue: mergeLines(parseQueue(a[annotations.queue]), parseLine(a[annotations.line])),
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
export function toLease(
  state: LockState,
  version: string | undefined,
  base?: V1Lease,
  form: LineForm = 'short',
): V1Lease {
  const meta = base?.metadata ?? {};
  const second = (w: Waiter) => form === 'short' && inSecondForm(w);
  const firstForm = state.queue?.filter((w) => !second(w)) ?? [];
  const secondForm = state.queue?.filter(second) ?? [];
  const ours: Record<string, string | undefined> = {
    [annotations.content]: state.content,
    [annotations.lastEditor]: state.lastEditor,
    [annotations.lastEditedAt]: state.lastEditedAt?.toISOString(),
    [annotations.releasedBy]: state.releasedBy,
    [annotations.releasedAt]: state.releasedAt?.toISOString(),
    [annotations.releaseReason]: state.releaseReason,
    [annotations.queue]: firstForm.length
      ? JSON.stringify(
          firstForm.map((w) => ({
            id: w.id,
            user: w.user,
            since: w.since.toISOString(),
            expires: w.expires.toISOString(),
            ...(writtenTtl(w) ? { ttl: writtenTtl(w) } : {}),
            ...(w.beat !== undefined ? { beat: w.beat } : {}),
            ...(w.holdTimeoutSeconds ? { hold: w.holdTimeoutSeconds } : {}),
            ...(w.takesHandOver ? { ho: 1 } : {}),
          })),
        )
      : undefined,
    // The line is most of a Lease's bytes, and every byte of it is decoded and encoded on every
    // hand-over, by kube-apiserver, etcd and each replica: one short array per entry.
    [annotations.line]: secondForm.length
      ? JSON.stringify(
          secondForm.map((w) => {
            const at = w.since.getTime();
            const entry: (string | number | null)[] = [
              w.id,
              w.user,
              at,
              w.expires.getTime() - at,
              w.beat ?? null,
            ];
            const ttl = writtenTtl(w);
            if (w.holdTimeoutSeconds || ttl) entry.push(w.holdTimeoutSeconds ?? 0);
            if (ttl) entry.push(ttl);
            return entry;
          }),
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
      // What else the spec carries is kept as it came: coordinated leader election's `strategy`
      // and `preferredHolder`, or a field a later Kubernetes adds.
      ...base?.spec,
      holderIdentity: state.holder,
      acquireTime: micro(state.acquiredAt),
      renewTime: micro(state.renewedAt),
      leaseDurationSeconds: state.holdTimeoutSeconds,
      leaseTransitions: state.token,
    },
  };
}
