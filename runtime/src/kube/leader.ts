import { setTimeout as sleep } from 'node:timers/promises';
import {
  CoordinationV1Api,
  V1MicroTime,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { ignoreCalls, kubeCall, statusOf, type KubeObserver } from './client.js';

export interface LeaderElectionOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly observe?: KubeObserver | undefined;
  readonly clock?: () => number;
}

/**
 * What a leader does: it runs until `signal` aborts (leadership lost or the process stopping),
 * and when its promise settles it must have stopped acting.
 */
export type LeaderWork = (signal: AbortSignal) => Promise<void>;

type Attempt = 'acquired' | 'held-by-other' | 'failed';

/**
 * Leader election on a Lease with client-go's semantics: a leader renews every retry period and
 * steps down when no renewal succeeded within the renew deadline (every attempt is aborted at that
 * deadline, like client-go's context) or another holder is seen; a candidate takes over once the
 * record it last saw change has not changed for a lease duration on its own clock. Losing the lead
 * aborts the work's signal, and campaigning resumes only after the work has settled, so one
 * process never runs two terms at once.
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly clock: () => number;
  private readonly stopping = new AbortController();
  private observedKey: string | undefined;
  private observedAt = 0;
  private observedDurationMs = 0;
  private leading = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: LeaderElectionOptions) {
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.clock = options.clock ?? Date.now;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Campaigns until stopped, running `work` in each term of leadership. */
  run(work: LeaderWork): void {
    this.loop ??= this.electionLoop(work);
  }

  /** Stops campaigning; a leader ends its work, then hands the Lease back so a successor need not wait it out. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
  }

  private stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async pause(ms: number): Promise<void> {
    await sleep(Math.max(0, ms), undefined, { signal: this.stopping.signal }).catch(
      () => undefined,
    );
  }

  private async electionLoop(work: LeaderWork): Promise<void> {
    const { retryPeriodMs } = this.options;
    while (!this.stopped()) {
      const started = this.clock();
      const attempt = await this.tryAcquireOrRenew(this.attemptSignal(retryPeriodMs));
      if (attempt !== 'acquired') {
        // A candidate looks twice per retry period, and wakes when the lease it watches would
        // expire: a successor then leads within lease duration + retry period of the last renewal.
        const expiresIn = this.observedAt + this.observedDurationMs - this.clock();
        await this.pause(
          expiresIn > 0 ? Math.min(retryPeriodMs / 2, expiresIn + 10) : retryPeriodMs / 2,
        );
        continue;
      }
      const term = new AbortController();
      this.leading = true;
      const working = work(term.signal).catch(() => undefined);
      await this.renewUntilLost(started);
      term.abort(new Error('leadership lost'));
      await working;
      this.leading = false;
    }
    await this.release().catch(() => undefined);
  }

  /** Renews every retry period until a renewal misses the deadline, another holder is seen, or stop. */
  private async renewUntilLost(acquiredAt: number): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs } = this.options;
    let lastRenew = acquiredAt;
    while (!this.stopped()) {
      await this.pause(retryPeriodMs);
      if (this.stopped()) return;
      const remaining = lastRenew + renewDeadlineMs - this.clock();
      if (remaining <= 0) return;
      const started = this.clock();
      const attempt = await this.tryAcquireOrRenew(this.attemptSignal(remaining));
      if (attempt === 'acquired') lastRenew = started;
      else if (attempt === 'held-by-other') return;
      else if (this.clock() >= lastRenew + renewDeadlineMs) return;
    }
  }

  /** Aborts an attempt after `ms` or when stopping. */
  private attemptSignal(ms: number): AbortSignal {
    return AbortSignal.any([AbortSignal.timeout(Math.max(1, Math.ceil(ms))), this.stopping.signal]);
  }

  private call<T>(verb: string, fn: Parameters<typeof kubeCall<T>>[1], signal: AbortSignal) {
    return kubeCall(verb, fn, this.options.observe ?? ignoreCalls, {
      timeoutMs: this.options.retryPeriodMs,
      signal,
    });
  }

  private spec(current: V1Lease | undefined, now: number) {
    const spec = current?.spec ?? {};
    const mine = spec.holderIdentity === this.options.identity;
    return {
      holderIdentity: this.options.identity,
      leaseDurationSeconds: Math.ceil(this.options.leaseDurationMs / 1000),
      acquireTime: mine ? spec.acquireTime : new V1MicroTime(now),
      renewTime: new V1MicroTime(now),
      leaseTransitions: (spec.leaseTransitions ?? 0) + (mine || !current ? 0 : 1),
    };
  }

  private async tryAcquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const { namespace, name, identity } = this.options;
    const now = this.clock();
    try {
      let current: V1Lease;
      try {
        current = await this.call(
          'get',
          (o) => this.api.readNamespacedLease({ name, namespace }, o),
          signal,
        );
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
        const body = { metadata: { name, namespace }, spec: this.spec(undefined, now) };
        await this.call(
          'create',
          (o) => this.api.createNamespacedLease({ namespace, body }, o),
          signal,
        );
        this.see(body.spec, now);
        return 'acquired';
      }
      const spec = current.spec ?? {};
      this.see(spec, now);
      const holder = spec.holderIdentity;
      const expired = this.observedAt + this.observedDurationMs <= now;
      if (holder && holder !== identity && !expired) return 'held-by-other';
      const body = { ...current, spec: this.spec(current, now) };
      await this.call(
        'update',
        (o) => this.api.replaceNamespacedLease({ name, namespace, body }, o),
        signal,
      );
      this.see(body.spec, now);
      return 'acquired';
    } catch {
      return 'failed';
    }
  }

  /** Records when the leader record last changed, on the local clock. */
  private see(spec: NonNullable<V1Lease['spec']>, now: number): void {
    const renew = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const key = `${spec.holderIdentity ?? ''}/${renew}/${spec.leaseTransitions ?? 0}`;
    if (key === this.observedKey) return;
    this.observedKey = key;
    this.observedAt = now;
    this.observedDurationMs =
      (spec.leaseDurationSeconds ?? this.options.leaseDurationMs / 1000) * 1000;
  }

  /** Hands the Lease back if this process still holds it. */
  private async release(): Promise<void> {
    const { namespace, name } = this.options;
    const signal = AbortSignal.timeout(this.options.retryPeriodMs * 2);
    const current = await this.call(
      'get',
      (o) => this.api.readNamespacedLease({ name, namespace }, o),
      signal,
    );
    if (current.spec?.holderIdentity !== this.options.identity) return;
    const now = new V1MicroTime(this.clock());
    const body = {
      ...current,
      spec: { ...current.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: now },
    };
    await this.call(
      'update',
      (o) => this.api.replaceNamespacedLease({ name, namespace, body }, o),
      signal,
    );
  }
}
