import type { Identity, Reviewer } from '../auth/authorizer.js';

/**
 * TokenReview and SubjectAccessReview as tables a test can change while it runs (token -> user,
 * user -> lease verbs), counting reviews and answering after `delayMs`, or once `gate` settles.
 */
export class TableReviewer implements Reviewer {
  reviews = 0;
  delayMs = 0;
  /** Token reviews wait for it while it is set: a test holds them in flight as long as it likes. */
  gate: Promise<void> | undefined;

  constructor(
    readonly tokens: Record<string, string>,
    readonly grants: Record<string, string[]>,
  ) {}

  async reviewToken(token: string): Promise<Identity | undefined> {
    this.reviews++;
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.gate) await this.gate;
    const user = this.tokens[token];
    return user ? { user, groups: ['system:authenticated'] } : undefined;
  }

  async mayAccess(who: Identity, verb: string, _lock?: string): Promise<boolean> {
    return this.grants[who.user]?.includes(verb) ?? false;
  }
}
