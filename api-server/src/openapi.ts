/** The OpenAPI 3.1 description served at /openapi.json; docs/api.md mirrors it (checked by a test). */
const text = { 'text/plain': { schema: { type: 'string' } } };
const refusal = (description: string) => ({
  description,
  content: { ...text, 'application/json': { schema: { $ref: '#/components/schemas/Refusal' } } },
});
const ok = (description: string, schema: string) => ({
  description,
  content: { ...text, 'application/json': { schema: { $ref: `#/components/schemas/${schema}` } } },
});
const query = (name: string, schema: Record<string, unknown>, description: string) => ({
  name,
  in: 'query',
  required: false,
  schema,
  description,
});
const username = {
  name: 'Username',
  in: 'header',
  required: false,
  description: 'AUTH_MODE=header: who you are (required for avail, change and release).',
  schema: { type: 'string', maxLength: 64 },
};
const ifMatch = {
  name: 'If-Match',
  in: 'header',
  required: false,
  schema: { type: 'string' },
  description: 'The token you were granted; 412 when the lock was granted again since.',
};
const lock = { name: 'lock', in: 'path', required: true, schema: { type: 'string' } };
const common = {
  '400': refusal('Missing or invalid input'),
  '401': refusal('AUTH_MODE=kubernetes: no valid bearer token'),
  '403': refusal(
    'Not allowed: RBAC, ADMIN_USERS, a foreign browser Origin, or a mutation from another site (Sec-Fetch-Site: cross-site)',
  ),
  '404': refusal('Unknown lock'),
  '503': refusal(
    'Kubernetes API or its token and access reviews unreachable, lock not provisioned, or replica shutting down (see Retry-After); or the Lease full (lock_too_large) or refused by kube-apiserver (lock_invalid) until an operator mends it',
  ),
};
const limited = {
  '429': refusal(
    'Over the rate limit, or already waiting in line (waiting_limit); see Retry-After',
  ),
};
const wait = {
  name: 'wait',
  in: 'query',
  required: false,
  schema: { type: 'integer', minimum: 0 },
  description:
    'Seconds to wait in line when the lock is taken (cut to WAIT_MAX_SECONDS); answered on the grant, or 423 when the time runs out.',
};
const ttl = {
  name: 'ttl',
  in: 'query',
  required: false,
  schema: { type: 'integer', minimum: 1 },
  description:
    "The hold's time-to-live in seconds: a hold its holder does not renew (avail or change) within it is expired by the controller. At most the lock's maxHoldSeconds (a week when it sets none); over it: 400 invalid_ttl.",
};
const force = {
  name: 'force',
  in: 'query',
  required: false,
  schema: { enum: ['true', 'false'] },
  description: "true: an admin's release of anyone's hold (reason forced).",
};
const locked = refusal(
  'Wait: someone else holds the lock (or others wait in line first); see Retry-After',
);

/** The new content: the seed's header, or the body (change; release may carry it too). */
const contentHeader = {
  name: 'Retrospective',
  in: 'header',
  required: false,
  schema: { type: 'string' },
};
const contentBody = {
  required: false,
  content: {
    'text/plain': { schema: { type: 'string' } },
    'application/json': {
      schema: {
        type: 'object',
        required: ['retrospective'],
        properties: { retrospective: { type: 'string' } },
      },
    },
  },
};

const takeTheLock = {
  summary: 'Take the lock, or wait in line for it',
  parameters: [username, wait, ttl, ifMatch],
  responses: {
    '200': ok('Granted or renewed', 'Avail'),
    '409': refusal('If-Match given and the lock is not held: nothing renewed, nothing granted'),
    '412': refusal('If-Match given and the lock was granted again since'),
    '423': locked,
    ...limited,
    ...common,
  },
};

const verbs = {
  check: { get: { summary: 'Lock state', responses: { '200': ok('State', 'Check'), ...common } } },
  avail: { get: takeTheLock, post: takeTheLock },
  change: {
    post: {
      summary: 'Replace the content (holder only)',
      parameters: [username, ifMatch, contentHeader],
      requestBody: contentBody,
      responses: {
        '200': ok('Updated', 'Mutation'),
        '409': refusal('Not held: avail first'),
        '412': refusal('Stale token'),
        '413': refusal('Content or body too large'),
        '415': refusal('Unsupported media type'),
        '423': locked,
        ...limited,
        ...common,
      },
    },
  },
  release: {
    post: {
      summary: "Release the lock (holder only, or anyone's with force=true)",
      parameters: [username, ifMatch, force, contentHeader],
      requestBody: contentBody,
      responses: {
        '200': ok('Released (and the content written, when the request carried it)', 'Mutation'),
        '409': refusal('Not held'),
        '412': refusal('Stale token'),
        '413': refusal('Content or body too large'),
        '415': refusal('Unsupported media type'),
        '423': locked,
        ...limited,
        ...common,
      },
    },
  },
  history: {
    get: {
      summary: 'The last releases, newest last',
      parameters: [
        {
          name: 'limit',
          in: 'query',
          required: false,
          schema: { type: 'integer', minimum: 1, maximum: 500 },
          description: 'Only the newest n releases.',
        },
      ],
      responses: { '200': ok('History', 'History'), ...common },
    },
  },
};

const paths: Record<string, unknown> = {};
for (const [verb, operations] of Object.entries(verbs)) {
  paths[`/locks/{lock}/${verb}`] = { parameters: [lock], ...operations };
  if (verb !== 'history') paths[`/retrospective/${verb}`] = operations;
}
const plain = (summary: string, codes: string[]) => ({
  get: {
    summary,
    responses: Object.fromEntries(
      codes.map((c) => [c, { description: c === '200' ? 'OK' : 'Not ready', content: text }]),
    ),
  },
});
Object.assign(paths, {
  '/ws': {
    get: {
      summary:
        'WebSocket: snapshot, acquired, released, queue, reply, added and removed frames (?locks= chooses the locks, ?since= resumes); avail and release commands from the client',
      responses: {
        '101': { description: 'Switching protocols' },
        '401': { description: 'AUTH_MODE=kubernetes: no valid bearer token in the subprotocols' },
        '403': { description: 'Origin not allowed, or no lock the user may view' },
        '503': { description: 'Too many connections' },
      },
    },
  },
  '/locks': {
    get: {
      summary:
        'Every lock you may view, sorted by name, a page at a time: ?limit= (1-500, 100), ?continue= (the continue of the page before), ?search= (part of a name), ?held=true|false',
      parameters: [
        query('limit', { type: 'integer', minimum: 1, maximum: 500 }, 'Locks per page (100).'),
        query('continue', { type: 'string' }, "The previous page's continue."),
        query('search', { type: 'string' }, 'Only locks whose name contains it.'),
        query('held', { enum: ['true', 'false'] }, 'Only held (true) or free (false) locks.'),
      ],
      responses: {
        '200': ok('The locks', 'LockList'),
        '400': refusal('A query value out of range'),
        '401': refusal('AUTH_MODE=kubernetes: no valid bearer token'),
      },
    },
  },
  '/api/me': {
    get: {
      summary: 'Who you are and what you may do to each lock (view, hold, force-release)',
      parameters: [
        {
          name: 'locks',
          in: 'query',
          description:
            'Comma-separated lock names (at most 100) to ask about; required when over 100 locks are served',
          schema: { type: 'string' },
        },
      ],
      responses: {
        '200': ok('You', 'Me'),
        '400': refusal(
          'A name that is not a lock, over 100 names, or too many locks to answer for all',
        ),
        '401': refusal('AUTH_MODE=kubernetes: no valid bearer token'),
      },
    },
  },
  '/healthz': plain('Liveness', ['200']),
  '/readyz': plain('Readiness: the lock cache is synced and the process is not draining', [
    '200',
    '503',
  ]),
  '/ping': plain('Seed alias of /healthz', ['200']),
  '/openapi.json': {
    get: { summary: 'This document', responses: { '200': { description: 'OK' } } },
  },
  '/': {
    get: { summary: 'The management view (HTML)', responses: { '200': { description: 'OK' } } },
  },
});

const str = { type: 'string' };
const time = { type: 'string', format: 'date-time' };
export const openapi = {
  openapi: '3.1.0',
  info: {
    title: 'retrospective',
    version: '0.1.0',
    description: 'One shared string, one editor at a time, stored in a Kubernetes Lease.',
  },
  paths,
  components: {
    schemas: {
      Check: {
        type: 'object',
        required: ['lock', 'available', 'token', 'content'],
        properties: {
          lock: str,
          available: { type: 'boolean' },
          holder: str,
          since: time,
          heldSeconds: { type: 'integer' },
          token: { type: 'integer' },
          content: str,
          lastEditor: str,
          lastEditedAt: time,
          releasedBy: str,
          releasedAt: time,
          releaseReason: { enum: ['released', 'expired', 'forced'] },
          waiting: {
            type: 'array',
            items: { type: 'object', properties: { user: str, since: time } },
          },
        },
      },
      Avail: {
        type: 'object',
        required: ['lock', 'status', 'holder', 'since'],
        properties: {
          lock: str,
          status: { enum: ['granted', 'renewed', 'wait'] },
          holder: str,
          since: time,
          token: { type: 'integer' },
        },
      },
      Mutation: {
        type: 'object',
        required: ['lock', 'status', 'token'],
        properties: {
          lock: str,
          status: { enum: ['updated', 'released'] },
          reason: { enum: ['forced'] },
          token: { type: 'integer' },
          bytes: { type: 'integer', description: 'The content written, in bytes.' },
        },
      },
      Me: {
        type: 'object',
        required: ['mode', 'locks'],
        properties: {
          user: str,
          mode: { enum: ['header', 'kubernetes'] },
          locks: {
            type: 'object',
            additionalProperties: {
              type: 'object',
              properties: {
                view: { type: 'boolean' },
                hold: { type: 'boolean' },
                'force-release': { type: 'boolean' },
              },
            },
          },
        },
      },
      LockList: {
        type: 'object',
        required: ['locks'],
        properties: {
          locks: {
            type: 'array',
            items: {
              type: 'object',
              required: ['lock'],
              properties: {
                lock: str,
                provisioned: {
                  type: 'boolean',
                  description: 'false while its Lease is being made',
                },
                available: { type: 'boolean' },
                holder: str,
                since: time,
                heldSeconds: { type: 'integer' },
                token: { type: 'integer' },
                waiting: { type: 'integer' },
              },
            },
          },
          continue: {
            type: 'string',
            description: 'Pass as ?continue= for the next page; absent on the last',
          },
        },
      },
      Refusal: {
        type: 'object',
        required: ['error', 'message'],
        properties: { lock: str, error: str, message: str },
      },
      History: {
        type: 'object',
        required: ['lock', 'releases'],
        properties: {
          lock: str,
          kept: {
            type: 'integer',
            description: 'How many releases the history keeps (HISTORY_SIZE): older ones are gone.',
          },
          releases: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                lastEditor: str,
                releasedBy: str,
                releasedAt: time,
                reason: str,
                content: str,
                token: { type: 'integer' },
                holder: {
                  ...str,
                  description: 'Who held the lock (absent on entries kept before it was recorded).',
                },
                acquiredAt: {
                  ...time,
                  description: 'When that hold was granted (absent on older entries).',
                },
              },
            },
          },
        },
      },
    },
  },
};
