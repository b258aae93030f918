/** What a reconcile asks of the queue: nothing, or to be looked at again after a delay. */
export type ReconcileOutcome = { readonly requeueAfterMs?: number } | undefined;

export type SyncResult = 'success' | 'error' | 'conflict';

export interface WorkQueueOptions {
  readonly reconcile: (key: string) => Promise<ReconcileOutcome>;
  /** Conflicts are expected under concurrency: requeued at once, not counted as errors. */
  readonly isConflict: (error: unknown) => boolean;
  readonly onSync?: (key: string, result: SyncResult, seconds: number, error?: unknown) => void;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

/**
 * A per-key work queue in the client-go mould: a key is processed by one worker at a time,
 * adds while it is queued or in flight collapse into one, failures back off per key
 * (exponential, capped) and a success forgets the key's failures.
 */
export class WorkQueue {
  private readonly queue = new Set<string>();
  private readonly inFlight = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  /** Pending delayed adds: when each key is due, and its timer. */
  private readonly timers = new Map<
    string,
    { readonly due: number; readonly timer: NodeJS.Timeout }
  >();
  private running = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: WorkQueueOptions) {}

  add(key: string): void {
    if (!this.running) return;
    if (this.inFlight.has(key)) this.dirty.add(key);
    else this.queue.add(key);
    this.wake?.();
  }

  /**
   * Adds `key` after `ms`. Of several pending delays for one key the earliest wins, as in
   * client-go's delaying queue: a short error backoff is never swallowed by a long requeue.
   */
  addAfter(key: string, ms: number): void {
    if (!this.running) return;
    if (ms <= 0) return this.add(key);
    const due = performance.now() + ms;
    const pending = this.timers.get(key);
    if (pending && pending.due <= due) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.timers.set(key, { due, timer });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.work();
  }

  /** Stops taking work at once and waits for the reconcile in flight, if any. */
  async stop(): Promise<void> {
    this.running = false;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.queue.clear();
    this.dirty.clear();
    this.wake?.();
    await this.loop;
  }

  private backoff(key: string): number {
    const { baseDelayMs = 5, maxDelayMs = 30_000 } = this.options;
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    return Math.min(maxDelayMs, baseDelayMs * 2 ** (n - 1));
  }

  private async work(): Promise<void> {
    while (this.running) {
      const [key] = this.queue;
      if (key === undefined) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      this.queue.delete(key);
      this.inFlight.add(key);
      const started = performance.now();
      const seconds = () => (performance.now() - started) / 1000;
      try {
        const outcome = await this.options.reconcile(key);
        this.failures.delete(key);
        this.options.onSync?.(key, 'success', seconds());
        if (outcome?.requeueAfterMs !== undefined) this.addAfter(key, outcome.requeueAfterMs);
      } catch (error) {
        const conflict = this.options.isConflict(error);
        this.options.onSync?.(key, conflict ? 'conflict' : 'error', seconds(), error);
        if (conflict) this.add(key);
        else this.addAfter(key, this.backoff(key));
      } finally {
        this.inFlight.delete(key);
        if (this.dirty.delete(key)) this.add(key);
      }
    }
  }
}
