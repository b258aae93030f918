/** One client operation as the client saw it: when it started and ended, and the answer. */
export interface Op {
  readonly client: string;
  readonly kind: 'avail' | 'change' | 'release';
  readonly start: number;
  readonly end: number;
  readonly status: number;
  /** For avail: the granted token; for change/release: the token sent in If-Match. */
  readonly token?: number;
  /** For change: the content written. */
  readonly content?: string;
  /** For avail 200: granted or renewed. */
  readonly outcome?: string;
  /** For an answer that is neither success nor Wait: who answered and what, for the failure. */
  readonly detail?: string;
}

/** A release seen by a WebSocket client. */
export interface ReleaseFrame {
  readonly token: number;
  readonly content: string;
  readonly lastEditor?: string;
}

/**
 * Checks a recorded history of one lock (no expiry) and returns every violation found:
 * - every grant has its own token, and a grant that finished before another began has the
 *   smaller one (tokens increase in real time);
 * - no two holders at once: token k's holder stopped writing (its last successful change and
 *   its release began) before the grant of the next token finished;
 * - a holder is never refused its own change or release;
 * - every release frame carries the last content the holder of that token wrote.
 */
export function checkHistory(ops: readonly Op[], frames: readonly ReleaseFrame[]): string[] {
  const problems: string[] = [];
  const grants = ops.filter(
    (o) => o.kind === 'avail' && o.status === 200 && o.outcome === 'granted',
  );
  const byToken = new Map<number, Op>();
  for (const g of grants) {
    if (g.token === undefined) problems.push(`grant to ${g.client} without a token`);
    else if (byToken.has(g.token))
      problems.push(
        `token ${g.token} granted twice (${byToken.get(g.token)?.client}, ${g.client})`,
      );
    else byToken.set(g.token, g);
  }
  for (const a of grants) {
    for (const b of grants) {
      if (a.end < b.start && (a.token ?? 0) >= (b.token ?? 0))
        problems.push(
          `grant ${a.token} to ${a.client} finished before grant ${b.token} to ${b.client} began`,
        );
    }
  }

  const tokens = [...byToken.keys()].sort((x, y) => x - y);
  /** Per token, what its release may carry: the last acknowledged change, or one after it that got no answer. */
  const lastContent = new Map<number, Set<string>>();
  for (const [i, token] of tokens.entries()) {
    const grant = byToken.get(token)!;
    const mine = ops.filter(
      (o) => o.client === grant.client && o.kind !== 'avail' && o.token === token,
    );
    for (const op of mine) {
      // No answer at all (its replica was killed) is not a refusal: it may or may not have landed.
      if (op.status !== 200 && op.status !== -1)
        problems.push(
          `holder ${grant.client} of token ${token} was refused its ${op.kind} (${op.status})`,
        );
    }
    const writes = mine.filter((o) => o.status === 200);
    const changes = writes.filter((o) => o.kind === 'change');
    const last = changes.at(-1);
    const unanswered = mine.filter(
      (o) => o.kind === 'change' && o.status === -1 && (!last || o.start > last.start),
    );
    const possible = [last, ...unanswered].flatMap((o) =>
      o?.content === undefined ? [] : [o.content],
    );
    if (possible.length) lastContent.set(token, new Set(possible));
    const next = tokens[i + 1];
    if (next === undefined) continue;
    const nextGrant = byToken.get(next)!;
    // A release that got no answer (its replica was killed) may have landed before the next grant.
    const release =
      writes.find((o) => o.kind === 'release') ??
      mine.find((o) => o.kind === 'release' && o.status === -1 && o.start < nextGrant.end);
    if (!release)
      problems.push(
        `token ${next} granted while token ${token} (${grant.client}) was never released`,
      );
    for (const w of writes) {
      if (w.start > nextGrant.end)
        problems.push(
          `${grant.client} (token ${token}) ${w.kind} began after token ${next} was granted to ${nextGrant.client}`,
        );
    }
  }

  for (const frame of frames) {
    const expected = lastContent.get(frame.token);
    if (expected !== undefined && !expected.has(frame.content))
      problems.push(
        `release of token ${frame.token} carried "${frame.content}", expected "${[...expected].join('" or "')}"`,
      );
  }
  return problems;
}
