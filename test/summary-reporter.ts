import type { Reporter, TestModule } from 'vitest/node';

/** How many of the slowest files the summary names: where the suite's time goes. */
const slowest = 10;

/** How much of a failure's first error the summary repeats. */
const errorChars = 300;

/**
 * Ends the run with the slowest files (what each costs, so the cost stays visible as the suite
 * grows), each failed test with the start of its error (a CI log is often read from its tail
 * only), and one plain line, "N passed, N failed, N skipped", for CI log readers.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: readonly TestModule[]): void {
    const counts = { passed: 0, failed: 0, skipped: 0 };
    const failures: string[] = [];
    for (const module of modules) {
      const file = module.moduleId.replace(`${process.cwd()}/`, '');
      let failed = 0;
      for (const test of module.children.allTests()) {
        const result = test.result();
        if (result.state === 'passed') counts.passed++;
        else if (result.state === 'failed') {
          failed++;
          failures.push(failure(`${file} > ${test.fullName}`, result.errors));
        } else counts.skipped++;
      }
      // A file that failed outside any test (import, beforeAll) counts as one failure.
      if (module.state() === 'failed' && failed === 0) {
        counts.failed++;
        failures.push(failure(file, module.errors()));
      } else counts.failed += failed;
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
    if (failures.length > 0) process.stdout.write(`\nfailed:\n${failures.join('\n')}\n`);
    process.stdout.write(
      `\n${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`,
    );
  }
}

/** One failed test (or file) and the start of its first error, on at most a few lines. */
function failure(name: string, errors: readonly { message?: string }[] | undefined): string {
  const message = (errors?.[0]?.message ?? '').replace(/\s+/g, ' ').slice(0, errorChars);
  return `  ${name}\n      ${message}`;
}
