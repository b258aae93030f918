import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

export interface LifecycleOptions {
  readonly logger: Logger;
  /** The whole shutdown budget; keep it below the pod's terminationGracePeriodSeconds. */
  readonly shutdownTimeoutMs: number;
  /** How long to keep serving after readiness turns off, while endpoints are being removed. */
  readonly drainDelayMs: number;
  /** Ends the process (tests replace it). */
  readonly exit?: (code: number) => void;
}

/** A shutdown step; `deadline` aborts when the step must give up waiting so later steps still run. */
export type ShutdownStep = (deadline: AbortSignal) => Promise<void> | void;

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

/** Time kept back from the shutdown budget for the steps after a long wait, and the log flush. */
const reserveMs = 1500;

/**
 * One process's life, in the order the Kubernetes docs and graceful-shutdown libraries use: on
 * SIGTERM or SIGINT readiness turns off at once, the process keeps serving for the drain delay
 * (while its endpoint is removed from Services and ingresses), then runs its shutdown steps in
 * order under one deadline (stop accepting, wait for in-flight requests, close WebSockets, stop
 * watches), flushes the log and exits. A promise rejected with no handler is logged and shuts the
 * process down the same way, with exit code 1: it never keeps running half-alive.
 */
export class Lifecycle {
  private readonly checks: { name: string; ok: () => boolean }[] = [];
  private readonly steps: { name: string; run: ShutdownStep }[] = [];
  private stopping: Promise<void> | undefined;
  private readonly exit: (code: number) => void;

  constructor(private readonly options: LifecycleOptions) {
    this.exit = options.exit ?? ((code) => process.exit(code));
  }

  /** Adds a condition for readiness (for example "the lock cache is synced"). */
  readiness(name: string, ok: () => boolean): this {
    this.checks.push({ name, ok });
    return this;
  }

  /** Adds a shutdown step; steps run in the order they were added, after the drain delay. */
  onShutdown(name: string, run: ShutdownStep): this {
    this.steps.push({ name, run });
    return this;
  }

  get draining(): boolean {
    return this.stopping !== undefined;
  }

  /** Ready means every readiness condition holds and the process is not draining. */
  ready(): Readiness {
    if (this.draining) return { ready: false, reason: 'shutting down' };
    const failing = this.checks.find((check) => !check.ok());
    return failing ? { ready: false, reason: failing.name } : { ready: true, reason: 'ready' };
  }

  /** Shuts down on SIGTERM and SIGINT, and on a crash. */
  install(): this {
    const { logger } = this.options;
    process.once('SIGTERM', () => void this.shutdown('SIGTERM'));
    process.once('SIGINT', () => void this.shutdown('SIGINT'));
    process.on('unhandledRejection', (reason) => {
      logger.fatal({ err: reason }, 'unhandled promise rejection; shutting down');
      void this.shutdown('unhandledRejection', 1);
    });
    process.on('uncaughtException', (error, origin) => {
      // The process state is unknown after an uncaught exception: no drain, just a clean log.
      logger.fatal({ err: error, origin }, 'uncaught exception; exiting');
      logger.flush(() => this.exit(1));
    });
    return this;
  }

  /** Drains and stops; later calls return the same promise. */
  shutdown(reason: string, code = 0): Promise<void> {
    this.stopping ??= this.run(reason, code).catch((error: unknown) => {
      this.options.logger.fatal({ err: error }, 'shutdown failed; exiting');
      this.options.logger.flush(() => this.exit(1));
    });
    return this.stopping;
  }

  private async run(reason: string, code: number): Promise<void> {
    const { logger, shutdownTimeoutMs, drainDelayMs } = this.options;
    const started = performance.now();
    logger.info({ reason, drainDelayMs, shutdownTimeoutMs }, 'shutting down: not ready, draining');
    const hardStop = setTimeout(() => {
      logger.error({ reason }, 'shutdown deadline passed; exiting');
      logger.flush(() => this.exit(1));
    }, shutdownTimeoutMs);
    hardStop.unref();
    await sleep(Math.min(drainDelayMs, Math.max(0, shutdownTimeoutMs - reserveMs)));
    const remaining = shutdownTimeoutMs - (performance.now() - started) - reserveMs;
    const deadline = AbortSignal.timeout(Math.max(1, Math.round(remaining)));
    let failed = false;
    for (const step of this.steps) {
      try {
        await step.run(deadline);
      } catch (error) {
        failed = true;
        logger.warn({ err: error, step: step.name }, 'shutdown step failed');
      }
    }
    clearTimeout(hardStop);
    const ms = Math.round(performance.now() - started);
    logger.info({ ms }, 'stopped');
    await new Promise<void>((resolve) => logger.flush(() => resolve()));
    this.exit(failed && code === 0 ? 1 : code);
  }
}
