import type { Logger } from 'pino';
import { Lifecycle } from './lifecycle.js';
import { createLogger } from './logger.js';

/** What every process's configuration says about its own life. */
export interface ProcessConfig {
  readonly LOG_LEVEL: string;
  readonly SHUTDOWN_TIMEOUT_SECONDS: number;
  readonly DRAIN_DELAY_SECONDS: number;
}

/** A process's root logger and its lifecycle, with the signal and crash handlers installed. */
export function startProcess(
  app: string,
  config: ProcessConfig,
  base: Record<string, unknown> = {},
): { logger: Logger; lifecycle: Lifecycle } {
  const logger = createLogger(app, config.LOG_LEVEL, base);
  const lifecycle = new Lifecycle({
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT_SECONDS * 1000,
    drainDelayMs: config.DRAIN_DELAY_SECONDS * 1000,
  }).install();
  return { logger, lifecycle };
}
