import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { repoRoot } from '../support/kube.ts';

/** GitHub's anchor for a Markdown heading. */
const anchor = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-');

describe('runbooks', () => {
  it('every alert links to a runbook heading in docs/operations.md', () => {
    const rules = parse(
      readFileSync(resolve(repoRoot, 'charts/retrospective/files/prometheus-rules.yaml'), 'utf8'),
    ) as { groups: { rules: { alert: string; annotations: { runbook_url: string } }[] }[] };
    const operations = readFileSync(resolve(repoRoot, 'docs/operations.md'), 'utf8');
    const anchors = new Set(
      operations
        .split('\n')
        .filter((l) => l.startsWith('#'))
        .map((l) => anchor(l.replace(/^#+/, ''))),
    );
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.length).toBe(9);
    for (const { alert, annotations } of alerts) {
      const [page, fragment] = annotations.runbook_url.split('#');
      expect(page, alert).toMatch(/\/docs\/operations\.md$/);
      expect(anchors, `${alert}: no heading for #${fragment}`).toContain(fragment);
    }
  });
});
