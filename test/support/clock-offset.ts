/**
 * Loaded with `node --import` into a process under test: its wall clock (Date) runs
 * CLOCK_OFFSET_MS ahead, and CLOCK_STEP_MS further each time it gets SIGUSR2. Monotonic time
 * (performance.now) is left alone, as on a machine whose clock is merely set wrong.
 */
const RealDate = Date;
let offset = Number(process.env.CLOCK_OFFSET_MS ?? 0);
const step = Number(process.env.CLOCK_STEP_MS ?? 0);
process.on('SIGUSR2', () => {
  offset += step;
});

class ShiftedDate extends RealDate {
  constructor(...args: [] | [string | number | Date]) {
    if (args.length === 0) super(RealDate.now() + offset);
    else super(args[0]);
  }

  static override now(): number {
    return RealDate.now() + offset;
  }
}

globalThis.Date = ShiftedDate as DateConstructor;
