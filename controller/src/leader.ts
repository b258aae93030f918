import {
  CoordinationV1Api,
  V1MicroTime,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import { kubeCall, statusOf, type KubeObserver } from '@retrospective/lock';

export interface LeaderElectionOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
  readonly observe?: KubeObserver;
  readonly clock?: () => number;
}

type Attempt = 'acquired' | 'held-by-other' | 'failed';

/**
 * Leader election on a Lease with client-go's semantics: a leader renews every retry period
 * and steps down when it could not renew within the renew deadline; a candidate takes over
 * once the record it last saw change has not changed for a lease duration on its own clock.
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly clock: () => number;
  private observedKey: string | undefined;
  private observedAt = 0;
  private observedDurationMs = 0;
  private leading = false;
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: LeaderElectionOptions) {
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.clock = options.clock ?? Date.now;
  }

  isLeader(): boolean {
    return this.leading;
  }

  run(): void {
    this.loop ??= this.electionLoop();
  }

  /** Stops campaigning; a leader hands the Lease back so a successor need not wait it out. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    if (this.leading) {
      this.leading = false;
      this.options.onStoppedLeading();
      await this.release().catch(() => undefined);
    }
  }

  /** A method, not a field read, because sleeps let stop() change it under a running loop. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => (clearTimeout(timer), resolve());
    });
  }

  private async electionLoop(): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs } = this.options;
    while (!this.isStopped()) {
      if (!this.leading) {
        if ((await this.tryAcquireOrRenew()) === 'acquired') {
          this.leading = true;
          this.options.onStartedLeading();
          continue;
        }
        // A candidate looks twice per retry period, and wakes when the lease it watches would
        // expire: a successor then leads within lease duration + retry period of the last renewal.
        const poll = retryPeriodMs / 2;
        const expiresIn = this.observedAt + this.observedDurationMs - this.clock();
        await this.sleep(expiresIn > 0 ? Math.min(poll, expiresIn + 10) : poll);
        continue;
      }
      const lastRenew = this.clock();
      let renewed = false;
      while (!this.isStopped() && this.clock() - lastRenew < renewDeadlineMs) {
        await this.sleep(retryPeriodMs);
        if (this.isStopped()) return;
        const attempt = await this.tryAcquireOrRenew();
        if (attempt === 'held-by-other') break;
        if (attempt === 'acquired') {
          renewed = true;
          break;
        }
      }
      if (!renewed && !this.isStopped()) {
        this.leading = false;
        this.options.onStoppedLeading();
      }
    }
  }

  private call<T>(verb: string, fn: Parameters<typeof kubeCall<T>>[1]): Promise<T> {
    return kubeCall(
      verb,
      fn,
      this.options.observe ?? (() => undefined),
      this.options.retryPeriodMs,
    );
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

  private async tryAcquireOrRenew(): Promise<Attempt> {
    const { namespace, name, identity } = this.options;
    const now = this.clock();
    try {
      let current: V1Lease;
      try {
        current = await this.call('get', (o) =>
          this.api.readNamespacedLease({ name, namespace }, o),
        );
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
        const body = { metadata: { name, namespace }, spec: this.spec(undefined, now) };
        await this.call('create', (o) => this.api.createNamespacedLease({ namespace, body }, o));
        this.see(body.spec, now);
        return 'acquired';
      }
      const spec = current.spec ?? {};
      this.see(spec, now);
      const holder = spec.holderIdentity;
      const expired = this.observedAt + this.observedDurationMs <= now;
      if (holder && holder !== identity && !expired) return 'held-by-other';
      const body = { ...current, spec: this.spec(current, now) };
      await this.call('update', (o) =>
        this.api.replaceNamespacedLease({ name, namespace, body }, o),
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

  private async release(): Promise<void> {
    const { namespace, name } = this.options;
    const current = await this.call('get', (o) =>
      this.api.readNamespacedLease({ name, namespace }, o),
    );
    if (current.spec?.holderIdentity !== this.options.identity) return;
    const now = new V1MicroTime(this.clock());
    const body = {
      ...current,
      spec: { ...current.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: now },
    };
    await this.call('update', (o) => this.api.replaceNamespacedLease({ name, namespace, body }, o));
  }
}
