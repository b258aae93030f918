import type { Reporter, TestModule } from 'vitest/node';

/** How many of the slowest files the summary names: where the suite's time goes. */
const slowest = 10;

/**
 * Ends the run with the slowest files (what each costs, so the cost stays visible as the suite
 * grows) and one plain line, "N passed, N failed, N skipped", for CI log readers.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: readonly TestModule[]): void {
    const counts = { passed: 0, failed: 0, skipped: 0 };
    for (const module of modules) {
      let failed = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') counts.passed++;
        else if (state === 'failed') failed++;
        else counts.skipped++;
      }
      // A file that failed outside any test (import, beforeAll) counts as one failure.
      counts.failed += module.state() === 'failed' && failed === 0 ? 1 : failed;
    }
    const timed = modules
      .map((m) => {
        const d = m.diagnostic();
        return {
          file: m.moduleId.replace(`${process.cwd()}/`, ''),
          seconds: (d.duration + d.collectDuration) / 1000,
        };
      })
      .sort((a, b) => b.seconds - a.seconds)
      .slice(0, slowest);
    const lines = timed.map(
      ({ file, seconds }) => `  ${seconds.toFixed(1).padStart(6)} s  ${file}`,
    );
    process.stdout.write(`\nslowest files:\n${lines.join('\n')}\n`);
    process.stdout.write(
      `\n${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`,
    );
  }
}
