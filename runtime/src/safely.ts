import type { Logger } from 'pino';

/**
 * Wraps a callback that runs outside any request (a timer, an event listener, a watch handler) so
 * that whatever it throws or rejects with is logged instead of escaping into the event loop,
 * where it would end the process.
 */
export function safely<A extends unknown[]>(
  logger: Pick<Logger, 'error'>,
  what: string,
  fn: (...args: A) => unknown,
): (...args: A) => void {
  return (...args: A) => {
    try {
      const result = fn(...args);
      if (result instanceof Promise)
        result.catch((error: unknown) => logger.error({ err: error }, `${what} failed`));
    } catch (error) {
      logger.error({ err: error }, `${what} failed`);
    }
  };
}

/** Runs functions one at a time per key, in the order given; keys run independently. */
export class KeyedSerial {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.tails.get(key) ?? Promise.resolve();
    const result = before.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}
