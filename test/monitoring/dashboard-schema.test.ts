import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../support/kube.ts';

/**
 * No Grafana server can run here (its Go module is AGPL), so the dashboard is checked against
 * Grafana's published schema, the @grafana/schema package: the JSON is compiled as an object
 * literal of type Dashboard, and each panel's options as its plugin's Options type. Object
 * literals get TypeScript's excess property checks, so an unknown key fails as well as a wrong
 * type or a missing required field. The schema has no Prometheus annotation (its `target` is the
 * built-in Grafana one): annotations are checked as Grafana's Prometheus data source saves them,
 * the query in `target` and the formats beside it.
 */
const dashboardPath = resolve(repoRoot, 'charts/retrospective/files/dashboards/retrospective.json');
const panelOptions: Record<string, string> = {
  timeseries: 'TimeSeriesPanelCfg',
  stat: 'StatPanelCfg',
  'state-timeline': 'StateTimelinePanelCfg',
  table: 'TablePanelCfg',
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
function check(dashboard: object): string[] {
  const { panels = [] } = dashboard as { panels?: { type: string; options?: unknown }[] };
  const imports = Object.values(panelOptions).map(
    (name) => `import type { Options as ${name} } from '${plugin(name)}';`,
  );
  const checks = panels.flatMap((panel, i) => {
    const type = panelOptions[panel.type];
    return type
      ? [`export const panel${i}: Json<${type}> = ${JSON.stringify(panel.options)};`]
      : [];
  });
  const source = [
    "import type { AnnotationQuery, Dashboard, DataQuery } from '@grafana/schema';",
    ...imports,
    // JSON cannot name a TypeScript enum member: accept each string enum's values instead.
    'type Json<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T',
    '  : T extends readonly (infer U)[] ? Json<U>[] : T extends object ? { [K in keyof T]: Json<T[K]> } : T;',
    'type PrometheusAnnotation = Omit<AnnotationQuery, "target"> & {',
    '  target: DataQuery & { expr: string; interval: string };',
    '  titleFormat: string; textFormat: string; tagKeys: string; useValueForTime: boolean };',
    'type WithAnnotations = Omit<Dashboard, "annotations"> & { annotations: { list: PrometheusAnnotation[] } };',
    `export const dashboard: Json<WithAnnotations> = ${JSON.stringify(dashboard)};`,
    ...checks,
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

interface Target {
  expr: string;
}
interface Panel {
  type: string;
  title: string;
  options?: unknown;
  targets?: Target[];
  fieldConfig?: { defaults: { unit?: string }; overrides: { properties: { id: string }[] }[] };
  transformations?: { id: string; options: { renameByName?: Record<string, string> } }[];
}
interface Rendered {
  panels: Panel[];
  templating: { list: { name: string; type: string; hide?: number; query?: unknown }[] };
  annotations: { list: { name: string; target: Target }[] };
  links: { title: string; url: string }[];
}

/** The dashboard as the mixin renders it with `config` merged into its _config. */
const renderMixin = (config: Record<string, unknown>): Rendered =>
  JSON.parse(
    execFileSync(resolve(repoRoot, 'bin/jsonnet'), [
      '-J',
      resolve(repoRoot, 'manifests/monitoring'),
      '-e',
      `((import "mixin.libsonnet") + { _config+:: ${JSON.stringify(config)} }).grafanaDashboards["retrospective.json"]`,
    ]).toString(),
  ) as Rendered;

/** What a query measures, from its metric names: seconds, a count, or a rate per second. */
function measures(expr: string): string {
  if (/histogram_quantile\([^]*_seconds_bucket\{/.test(expr)) return 'seconds';
  if (/\brate\(/.test(expr)) return 'per second';
  if (/_seconds\{/.test(expr)) return 'seconds';
  return 'count';
}
/** What each Grafana unit the dashboard may use measures. */
const unitMeasures: Record<string, string> = {
  s: 'seconds',
  short: 'count',
  reqps: 'per second',
  ops: 'per second',
  cps: 'per second',
  mps: 'per second',
};
/** Why `panel` does not show one unit for all its queries; empty when it does. */
function unitProblems(panel: Panel): string[] {
  const unit = panel.fieldConfig?.defaults.unit;
  if (unit === undefined) return [`${panel.title}: no unit`];
  const problems = (panel.fieldConfig?.overrides ?? []).some((o) =>
    o.properties.some((p) => p.id === 'unit'),
  )
    ? [`${panel.title}: a unit override`]
    : [];
  for (const { expr } of panel.targets ?? [])
    if (measures(expr) !== unitMeasures[unit])
      problems.push(`${panel.title}: ${measures(expr)} under unit ${unit}: ${expr}`);
  return problems;
}

/** The chart's alerting rules, as rendered from the same mixin. */
const rules = () =>
  (
    parse(
      readFileSync(resolve(repoRoot, 'charts/retrospective/files/prometheus-rules.yaml'), 'utf8'),
    ) as { groups: { rules: { alert?: string; annotations: { runbook_url: string } }[] }[] }
  ).groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [{ ...r, alert: r.alert }] : [])));

describe("the rendered dashboard against Grafana's published schema", () => {
  const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8')) as Rendered;
  const panels = dashboard.panels.filter((p) => p.type !== 'row');
  const variable = (name: string, d = dashboard) => d.templating.list.find((v) => v.name === name);

  it('is a valid Grafana dashboard, and every panel has valid options for its plugin', () => {
    expect(check(dashboard)).toEqual([]);
  });

  it('uses a ${datasource} variable, a lock variable, and only panel types it can check', () => {
    expect(dashboard.templating.list.map((v) => v.name)).toEqual([
      'datasource',
      'cluster',
      'namespace',
      'lock',
      'view_url',
    ]);
    for (const panel of dashboard.panels)
      expect([...Object.keys(panelOptions), 'row']).toContain(panel.type);
    const datasources = new Set(
      dashboard.panels.flatMap((p) => ('datasource' in p ? [JSON.stringify(p.datasource)] : [])),
    );
    expect([...datasources]).toEqual(['{"type":"prometheus","uid":"${datasource}"}']);
  });

  it('gives every panel one unit that all its queries measure', () => {
    expect(panels.flatMap(unitProblems)).toEqual([]);
    const mixed: Panel = {
      type: 'timeseries',
      title: 'mixed',
      fieldConfig: { defaults: { unit: 's' }, overrides: [] },
      targets: [
        { expr: 'max(retrospective_lock_held_seconds{})' },
        { expr: 'rate(x_total{}[1m])' },
      ],
    };
    expect(unitProblems(mixed)).toHaveLength(1);
    expect(unitProblems({ ...mixed, fieldConfig: undefined })).toEqual(['mixed: no unit']);
  });

  it('hides the cluster variable, and names no cluster label, unless showMultiCluster is on', () => {
    expect(variable('cluster')).toMatchObject({ type: 'query', hide: 2 });
    expect(JSON.stringify(dashboard)).not.toMatch(/cluster="/);
    const multi = renderMixin({ showMultiCluster: true, clusterLabel: 'k8s_cluster' });
    expect(variable('cluster', multi)).toMatchObject({ hide: 0 });
    expect(JSON.stringify(variable('cluster', multi)?.query)).toMatch(/, k8s_cluster\)/);
    const queries = [
      ...multi.panels.flatMap((p) => p.targets ?? []),
      ...multi.annotations.list.map((a) => a.target),
      ...['namespace', 'lock'].map((name) => ({ expr: JSON.stringify(variable(name, multi)) })),
    ];
    expect(queries.length).toBeGreaterThan(25);
    for (const { expr } of queries) expect(expr).toMatch(/k8s_cluster=\\?"\$cluster\\?"/);
  });

  it("marks grants, releases and this mixin's firing alerts", () => {
    const annotations = dashboard.annotations.list;
    expect(annotations.map((a) => a.name)).toEqual(['Grants', 'Releases', 'Firing alerts']);
    const alerts = rules().map((r) => r.alert);
    const firing = annotations[2]!.target.expr;
    expect(firing).toMatch(/^ALERTS\{alertstate="firing", alertname=~"[^"]+"/);
    expect(/alertname=~"([^"]+)"/.exec(firing)![1]!.split('|').sort()).toEqual(alerts.sort());
    for (const { target } of annotations) expect(target.expr).toMatch(/namespace=~"\$namespace/);
  });

  it('has a table of the current holders: lock, holder and how long', () => {
    const table = panels.find((p) => p.title === 'Current holders')!;
    expect(table.type).toBe('table');
    expect(table.targets).toHaveLength(1);
    expect(table.targets![0]).toMatchObject({ format: 'table', instant: true });
    expect(table.targets![0]!.expr).toMatch(/retrospective_lock_holder_info\{/);
    expect(table.targets![0]!.expr).toMatch(/retrospective_lock_held_seconds\{/);
    expect(table.transformations?.[0]?.options.renameByName).toMatchObject({
      lock: 'Lock',
      holder: 'Holder',
      Value: 'Held for',
    });
  });

  it('links to the management view and to the runbooks the alerts point at', () => {
    expect(dashboard.links.map((l) => l.title)).toEqual(['Management view', 'Runbooks']);
    expect(dashboard.links[0]!.url).toBe('${view_url}');
    expect(variable('view_url')).toMatchObject({ type: 'textbox', hide: 2 });
    expect(variable('view_url')?.query).toMatch(/^https?:\/\/.+\/$/);
    const runbooks = dashboard.links[1]!.url;
    expect(runbooks).toMatch(/\/docs\/operations\.md#runbooks$/);
    expect(readFileSync(resolve(repoRoot, 'docs/operations.md'), 'utf8')).toMatch(/^## Runbooks$/m);
    const urls = rules().map((r) => r.annotations.runbook_url);
    expect(urls.length).toBeGreaterThan(0);
    for (const url of urls) expect(url.startsWith(runbooks.replace(/runbooks$/, ''))).toBe(true);
  });

  it('would catch an unknown key, a wrong type and bad panel options', () => {
    const typo = check({ ...dashboard, refreshh: '30s' });
    expect(typo.join('\n')).toMatch(/refreshh/);
    const wrongType = check({ ...dashboard, schemaVersion: 'forty-one' });
    expect(wrongType.join('\n')).toMatch(/schemaVersion|not assignable/);
    const badOptions = check({
      ...dashboard,
      panels: [
        { type: 'timeseries', title: 'x', options: { legend: { displayMode: 'sideways' } } },
      ],
    });
    expect(badOptions.length).toBeGreaterThan(0);
    const badAnnotation = check({
      ...dashboard,
      annotations: { list: [{ name: 'x', target: { expr: 'up', exprr: 1 } }] },
    });
    expect(badAnnotation.join('\n')).toMatch(/exprr|enable|iconColor/);
  });
});
