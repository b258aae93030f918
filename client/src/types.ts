import type { components, paths } from './api.generated.js';

type Schemas = components['schemas'];

/** A lock's state, as `check` answers it. */
export type LockCheck = Schemas['Check'];
/** The answer to a grant or a renewal. */
export type Grant = Schemas['Avail'];
/** The answer to a change or a release. */
export type Mutation = Schemas['Mutation'];
/** A page of `GET /locks`. */
export type LockList = Schemas['LockList'];
/** One lock's row in `GET /locks`. */
export type LockSummary = LockList['locks'][number];
/** The last releases of a lock. */
export type History = Schemas['History'];
/** Who you are and what you may do to each lock. */
export type Me = Schemas['Me'];
/** Every refusal's JSON body. */
export type Refusal = Schemas['Refusal'];

/** The query of `avail`: `wait` (seconds in line) and `ttl` (the hold's time-to-live). */
export type AvailQuery = NonNullable<paths['/locks/{lock}/avail']['post']['parameters']['query']>;
/** The query of `GET /locks`: `limit`, `continue`, `search`, `held`. */
export type ListQuery = NonNullable<paths['/locks']['get']['parameters']['query']>;
/** The query of `history`: `limit`. */
export type HistoryQuery = NonNullable<
  paths['/locks/{lock}/history']['get']['parameters']['query']
>;

/** Frames the server sends on `/ws` (docs/api.md, "WebSocket"). */
export type Frame =
  | { readonly type: 'snapshot'; readonly locks: readonly LockCheck[] }
  | {
      readonly type: 'acquired';
      readonly lock: string;
      readonly holder: string;
      readonly since: string;
      readonly token: number;
    }
  | {
      readonly type: 'released';
      readonly lock: string;
      readonly content: string;
      readonly lastEditor?: string;
      readonly releasedBy: string;
      readonly releasedAt: string;
      readonly reason: 'released' | 'expired' | 'forced';
      readonly token: number;
      readonly replayed?: boolean;
    }
  | {
      readonly type: 'queue';
      readonly lock: string;
      readonly waiting: readonly { readonly user: string; readonly since: string }[];
    }
  | { readonly type: 'added'; readonly lock: LockCheck }
  | { readonly type: 'removed'; readonly lock: string };
