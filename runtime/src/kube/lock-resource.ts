import { z } from 'zod';

/**
 * The `Lock` custom resource (locks.retrospective.dev): one declared lock, its owner's policy in
 * `spec` and what the controller observed of its Lease in `status`. These zod schemas are the one
 * source of truth: the TypeScript types are inferred from them and the CRD's OpenAPI schema is
 * generated from them (`lockCrd`, written into the chart by `make generate`, checked by
 * `make verify`). The Lease stays the lock; a `Lock` never holds a second copy of its state.
 */
export const lockGroup = 'retrospective.dev';
export const lockVersion = 'v1alpha1';
export const lockPlural = 'locks';
export const lockKind = 'Lock';
export const lockApiVersion = `${lockGroup}/${lockVersion}`;

/**
 * Bytes a full line and full content may take in a Lease (its annotations may take 256 KiB; room
 * is kept for what other tools add and for the service's own fixed fields).
 */
export const leaseBudgetBytes = 256 * 1024 - 16 * 1024;
/** The most one line entry takes once encoded: a user name of 256 bytes, id, times, TTL. */
export const waiterEntryBytes = 440;
/** Everything else the service keeps on a Lease: names of the last editor and releaser, times. */
export const leaseFixedBytes = 2048;
/** What content and line may take together: `maxContentBytes + waiterEntryBytes x maxWaiters`. */
export const leaseLineAndContentBytes = leaseBudgetBytes - leaseFixedBytes;

const week = 7 * 24 * 3600;
const seconds = (max: number) => z.number().int().min(0).max(max);
type Rule = { rule: string; message: string; fieldPath?: string; reason?: string };
const rules = (...list: Rule[]) => ({ 'x-kubernetes-validations': list });

/** Limits of the lock's waiting line (`avail?wait=`). */
export const lockWaitingSpec = z
  .object({
    maxSeconds: seconds(3600)
      .default(300)
      .describe(
        'The longest `avail?wait=<seconds>` a caller may wait in line; longer asks are cut to it.',
      ),
    maxWaiters: z
      .number()
      .int()
      .min(1)
      .max(600)
      .default(100)
      .describe('Callers that may wait in line at once; more get 503 `queue_full`.'),
    maxPerUser: z
      .number()
      .int()
      .min(1)
      .max(100)
      .default(1)
      .describe('Places one user may take in the line at once; more get 429 `waiting_limit`.'),
  })
  .describe('The waiting line: how long, how many, how many per user.')
  .meta(
    rules({
      rule: 'self.maxPerUser <= self.maxWaiters',
      message:
        'maxPerUser must not exceed maxWaiters: one user cannot have more places than the line has',
      fieldPath: '.maxPerUser',
    }),
  );

/** What a lock's owner decides. Every field has a default, so `spec: {}` is a valid lock. */
export const lockSpec = z
  .object({
    description: z
      .string()
      .max(1024)
      .optional()
      .describe('What the lock guards, shown by the view and `kubectl describe`.'),
    holdTimeoutSeconds: seconds(week)
      .default(0)
      .describe(
        'Seconds a hold may stay idle (no avail, change or renewal from its holder) before the controller expires it; 0 keeps a hold until it is released or forced.',
      ),
    maxHoldSeconds: seconds(week)
      .default(0)
      .describe(
        'The longest hold time-to-live a client may ask for with `avail?ttl=`; 0 allows up to holdTimeoutSeconds when that is set, else up to a week.',
      ),
    heldTooLongSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 24 * 3600)
      .default(900)
      .describe('A hold longer than this is held too long: the alerts and the view use it.'),
    maxContentBytes: z
      .number()
      .int()
      .min(1)
      .max(200 * 1024)
      .default(32 * 1024)
      .describe('The largest content `change` accepts, in bytes; larger gets 413.'),
    waiting: lockWaitingSpec.default(() => lockWaitingSpec.parse({})),
  })
  .describe("The lock's policy, decided by its owner.")
  .meta(
    rules(
      {
        rule: `self.maxContentBytes + ${waiterEntryBytes} * self.waiting.maxWaiters <= ${leaseLineAndContentBytes}`,
        message: `maxContentBytes + ${waiterEntryBytes} x waiting.maxWaiters must stay under ${leaseLineAndContentBytes} bytes, or a full lock would not fit in its Lease (256 KiB of annotations)`,
        fieldPath: '.waiting.maxWaiters',
      },
      {
        rule: 'self.maxHoldSeconds == 0 || self.holdTimeoutSeconds <= self.maxHoldSeconds',
        message: 'holdTimeoutSeconds must not exceed maxHoldSeconds',
        fieldPath: '.holdTimeoutSeconds',
      },
    ),
  );

const dateTime = () => z.string().max(64).meta({ format: 'date-time' });
const userName = () => z.string().max(256);

/** A `metav1.Condition`, with the bounds Kubernetes itself checks. */
export const lockCondition = z.object({
  type: z.enum(['Ready', 'HeldTooLong']).describe('What the condition is about.'),
  status: z.enum(['True', 'False', 'Unknown']),
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: dateTime().describe('When `status` last changed.'),
  reason: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
    .describe('One CamelCase word for machines.'),
  message: z.string().max(32768).describe('A sentence for people.'),
});

/** Why a lock was last released; `deleted` is never written (the Lock is gone by then). */
export const releaseReasons = ['released', 'expired', 'forced'] as const;

/** What the controller observed of the Lease; written only when it changes. */
export const lockStatus = z
  .object({
    observedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The `metadata.generation` this status was computed for.'),
    holder: userName().optional().describe('Who holds the lock; absent when it is free.'),
    since: dateTime().optional().describe('When the current hold was granted.'),
    token: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The fencing token of the current (or last) hold; it only grows.'),
    waiting: z.number().int().min(0).max(600).optional().describe('Callers waiting in line.'),
    lastRelease: z
      .object({
        user: userName().optional().describe('Who released it (the controller for an expiry).'),
        at: dateTime().optional(),
        reason: z.enum(releaseReasons).optional(),
      })
      .optional()
      .describe('The last release: who, when, why.'),
    conditions: z
      .array(lockCondition)
      .max(8)
      .optional()
      .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
      .describe(
        '`Ready`: the Lease exists and is in step. `HeldTooLong`: held past heldTooLongSeconds.',
      ),
  })
  .describe('What the controller observed of the Lease.');

const objectMeta = z
  .object({
    name: z.string(),
    namespace: z.string().optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    generation: z.number().optional(),
    creationTimestamp: z.string().optional(),
    deletionTimestamp: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .loose();

/** A `Lock` as read from the API server (unknown fields tolerated, spec defaulted). */
export const lockObject = z.object({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: objectMeta,
  spec: lockSpec.default(() => lockSpec.parse({})),
  status: lockStatus.optional(),
});

export type LockSpec = z.infer<typeof lockSpec>;
export type LockStatus = z.infer<typeof lockStatus>;
export type LockCondition = z.infer<typeof lockCondition>;
export type LockObject = z.infer<typeof lockObject>;

/** Lock names are DNS labels: they name the Lease and a metric label, and travel in URLs. */
const nameRule: Rule = {
  rule: "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')",
  message: 'metadata.name must be a DNS label: at most 63 lower-case letters, digits and dashes',
  reason: 'FieldValueInvalid',
};

/** Drops what a structural CRD schema may not carry and zod emits (patterns of formats). */
function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'pattern' && (node as { format?: string }).format === 'date-time') continue;
    if (key === '$schema' || key === 'additionalProperties') continue;
    out[key] = structural(value);
  }
  return out;
}

const openApi = (schema: z.ZodType) =>
  structural(z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input' }));

/** The CustomResourceDefinition of `Lock`, generated from the schemas above. */
export function lockCrd(): Record<string, unknown> {
  const column = (name: string, type: string, jsonPath: string, description: string) => ({
    name,
    type,
    jsonPath,
    description,
  });
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${lockPlural}.${lockGroup}`,
      labels: { 'app.kubernetes.io/name': 'retrospective', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: lockGroup,
      scope: 'Namespaced',
      names: {
        kind: lockKind,
        listKind: `${lockKind}List`,
        plural: lockPlural,
        singular: 'lock',
        categories: ['retrospective'],
      },
      versions: [
        {
          name: lockVersion,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            column('Holder', 'string', '.status.holder', 'Who holds the lock.'),
            column('Since', 'date', '.status.since', 'When the current hold was granted.'),
            column('Token', 'integer', '.status.token', 'The fencing token of the hold.'),
            column('Waiting', 'integer', '.status.waiting', 'Callers waiting in line.'),
            column(
              'Ready',
              'string',
              '.status.conditions[?(@.type=="Ready")].status',
              'Whether the Lease exists and is in step.',
            ),
            column('Age', 'date', '.metadata.creationTimestamp', 'When the lock was declared.'),
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description:
                'A lock declared for the retrospective service: one holder at a time, a waiting line, and content, kept in the Lease of the same name.',
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                // Defaults are checked against the rules too: the whole default, not `{}`.
                spec: { ...(openApi(lockSpec) as object), default: lockSpec.parse({}) },
                status: openApi(lockStatus),
              },
              'x-kubernetes-validations': [nameRule],
            },
          },
        },
      ],
    },
  };
}
