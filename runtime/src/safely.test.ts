import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { KeyedSerial, safely } from './safely.js';

describe('safely', () => {
  it('logs what a callback throws or rejects with instead of letting it escape', async () => {
    const logged: string[] = [];
    const logger = pino(
      { level: 'error' },
      { write: (line: string) => void logged.push((JSON.parse(line) as { msg: string }).msg) },
    );
    safely(logger, 'timer', () => {
      throw new Error('boom');
    })();
    safely(logger, 'listener', async () => Promise.reject(new Error('late')))();
    await new Promise((r) => setImmediate(r));
    expect(logged).toEqual(['timer failed', 'listener failed']);
  });
});

describe('KeyedSerial', () => {
  it('runs one function at a time per key, in order, even after a failure', async () => {
    const serial = new KeyedSerial();
    const order: string[] = [];
    const step =
      (name: string, ms: number, fail = false) =>
      async () => {
        order.push(`${name}+`);
        await new Promise((r) => setTimeout(r, ms));
        order.push(`${name}-`);
        if (fail) throw new Error(name);
        return name;
      };
    const a = serial.run('k', step('a', 20, true));
    const b = serial.run('k', step('b', 1));
    const other = serial.run('j', step('x', 1));
    await expect(a).rejects.toThrow('a');
    expect(await b).toBe('b');
    expect(await other).toBe('x');
    expect(order.filter((o) => o.startsWith('a') || o.startsWith('b'))).toEqual([
      'a+',
      'a-',
      'b+',
      'b-',
    ]);
    expect(order.indexOf('x+')).toBeLessThan(order.indexOf('a-'));
  });
});
