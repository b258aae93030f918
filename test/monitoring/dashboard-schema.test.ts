import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/kube.ts';

/**
 * No Grafana server can run here (its Go module is AGPL), so the dashboard is checked against
 * Grafana's published schema, the @grafana/schema package: the JSON is compiled as an object
 * literal of type Dashboard, and each panel's options as its plugin's Options type. Object
 * literals get TypeScript's excess property checks, so an unknown key fails as well as a wrong
 * type or a missing required field.
 */
const dashboardPath = resolve(repoRoot, 'charts/retrospective/files/dashboards/retrospective.json');
const panelOptions: Record<string, string> = {
  timeseries: 'TimeSeriesPanelCfg',
  stat: 'StatPanelCfg',
  'state-timeline': 'StateTimelinePanelCfg',
};
const plugin = (name: string) => {
  const dir =
    name === 'StateTimelinePanelCfg' ? 'statetimeline' : name.replace('PanelCfg', '').toLowerCase();
  return `@grafana/schema/dist/esm/raw/composable/${dir}/panelcfg/x/${name}_types.gen`;
};

// Compiled inside the repository so that node_modules resolves.
mkdirSync(join(repoRoot, '.cache'), { recursive: true });
const work = mkdtempSync(join(repoRoot, '.cache', 'dashboard-check-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** TypeScript's complaints about `dashboard` as a Grafana dashboard; empty when it conforms. */
function check(dashboard: { panels?: { type: string; options?: unknown }[] }): string[] {
  const imports = Object.values(panelOptions).map(
    (name) => `import type { Options as ${name} } from '${plugin(name)}';`,
  );
  const panels = (dashboard.panels ?? []).flatMap((panel, i) => {
    const type = panelOptions[panel.type];
    return type
      ? [`export const panel${i}: Json<${type}> = ${JSON.stringify(panel.options)};`]
      : [];
  });
  const source = [
    "import type { Dashboard } from '@grafana/schema';",
    ...imports,
    // JSON cannot name a TypeScript enum member: accept each string enum's values instead.
    'type Json<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T',
    '  : T extends readonly (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;',
    `export const dashboard: Json<Dashboard> = ${JSON.stringify(dashboard)};`,
    ...panels,
  ].join('\n');
  const file = join(work, `check-${Math.random().toString(36).slice(2)}.ts`);
  writeFileSync(file, source);
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2023,
    types: [],
  });
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe("the rendered dashboard against Grafana's published schema", () => {
  const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8')) as {
    panels: { type: string; options?: unknown; targets?: { expr: string }[] }[];
    templating: { list: { name: string }[] };
  };

  it('is a valid Grafana dashboard, and every panel has valid options for its plugin', () => {
    expect(check(dashboard)).toEqual([]);
  });

  it('uses a ${datasource} variable, a lock variable, and only panel types it can check', () => {
    expect(dashboard.templating.list.map((v) => v.name)).toEqual([
      'datasource',
      'namespace',
      'lock',
    ]);
    for (const panel of dashboard.panels)
      expect([...Object.keys(panelOptions), 'row']).toContain(panel.type);
    const datasources = new Set(
      dashboard.panels.flatMap((p) => ('datasource' in p ? [JSON.stringify(p.datasource)] : [])),
    );
    expect([...datasources]).toEqual(['{"type":"prometheus","uid":"${datasource}"}']);
  });

  it('would catch an unknown key, a wrong type and bad panel options', () => {
    const typo = check({ ...dashboard, refreshh: '30s' } as typeof dashboard);
    expect(typo.join('\n')).toMatch(/refreshh/);
    const wrongType = check({
      ...dashboard,
      schemaVersion: 'forty-one',
    } as unknown as typeof dashboard);
    expect(wrongType.join('\n')).toMatch(/schemaVersion|not assignable/);
    const badOptions = check({
      ...dashboard,
      panels: [{ type: 'timeseries', options: { legend: { displayMode: 'sideways' } } }],
    });
    expect(badOptions.length).toBeGreaterThan(0);
  });
});
