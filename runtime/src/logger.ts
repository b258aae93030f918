import { pino, type Logger } from 'pino';

/** The process's one root logger; components take children with the same key names. */
export function createLogger(
  app: string,
  level: string,
  base: Record<string, unknown> = {},
): Logger {
  return pino({ level, base: { app, ...base } });
}
