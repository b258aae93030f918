import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { get, render, type Manifest } from '../support/helm.ts';
import { repoRoot } from '../support/kube.ts';

/**
 * The "What the chart creates" tables of docs/operations.md and of the chart README name what
 * `helm install retrospective charts/retrospective -n retrospective` creates: each row must be in
 * the render, and each named object of the render (and each Lease and ConfigMap the processes are
 * configured to use) must be a row.
 */
const docs = ['docs/operations.md', 'charts/retrospective/README.md'];

/** The [kind, name] rows of the first table after the "What the chart creates" heading. */
function tableRows(markdown: string): [string, string][] {
  const section = /^#{2,3} What the chart creates\n([^]*?)(?=^#{1,3} )/m.exec(`${markdown}\n# `);
  if (!section) return [];
  const table = /(?:^\|.*\|\n)+/m.exec(section[1]!)?.[0] ?? '';
  return table
    .split('\n')
    .slice(2)
    .filter(Boolean)
    .map((row) => {
      const [kind = '', name = ''] = row
        .split('|')
        .slice(1)
        .map((cell) => cell.trim());
      return [kind.replace(/ \(.*\)$/, ''), name.replace(/^`|`$/g, '')];
    });
}

/** Object kinds whose every rendered object must be in the tables. */
const listed = [
  'Deployment',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'Service',
  'PodDisruptionBudget',
];

/** The env value `name` of the chart's containers, split at commas. */
const envValues = (manifests: Manifest[], name: string) =>
  manifests.flatMap((m) =>
    (
      (get(m, 'spec.template.spec.containers') ?? []) as {
        env?: { name: string; value?: string }[];
      }[]
    )
      .flatMap((c) => c.env ?? [])
      .filter((e) => e.name === name && e.value)
      .flatMap((e) => e.value!.split(',')),
  );

/** The names that must be rows of the table, as `Kind name`. */
function expected(manifests: Manifest[]): string[] {
  const objects = manifests
    .filter((m) => listed.includes(m.kind))
    .map((m) => `${m.kind} ${m.metadata.name}`);
  const leases = [...envValues(manifests, 'LOCKS'), ...envValues(manifests, 'LEADER_ELECTION_ID')];
  // The history ConfigMaps are named only in the api-server's Role (the processes derive them).
  const configMaps = manifests
    .filter((m) => m.kind === 'Role')
    .flatMap((m) => (m.rules ?? []) as { resources: string[]; resourceNames?: string[] }[])
    .filter((r) => r.resources.includes('configmaps'))
    .flatMap((r) => r.resourceNames ?? []);
  return [
    ...new Set([
      ...objects,
      ...leases.map((name) => `Lease ${name}`),
      ...configMaps.map((name) => `ConfigMap ${name}`),
    ]),
  ].sort();
}

/** Rendered names the rows leave out. */
const unlisted = (manifests: Manifest[], rows: [string, string][]) => {
  const named = rows.map(([kind, name]) => `${kind} ${name}`);
  return expected(manifests).filter((name) => !named.includes(name));
};
/** Rows the render does not create. */
const unrendered = (manifests: Manifest[], rows: [string, string][]) => {
  const rendered = [
    ...expected(manifests),
    ...manifests.map((m) => `${m.kind} ${m.metadata.name}`),
  ];
  return rows.map(([kind, name]) => `${kind} ${name}`).filter((row) => !rendered.includes(row));
};
const rowsOf = (doc: string) => tableRows(readFileSync(resolve(repoRoot, doc), 'utf8'));

describe('the names the docs say the chart creates', () => {
  let manifests: Manifest[];
  beforeAll(async () => {
    manifests = await render({}, { release: 'retrospective', namespace: 'retrospective' });
  });

  it.each(docs)('%s names every object, Lease and history ConfigMap of the render', (doc) => {
    expect(unlisted(manifests, rowsOf(doc))).toEqual([]);
  });

  it.each(docs)('%s names nothing the render does not create', (doc) => {
    expect(rowsOf(doc).length).toBeGreaterThan(15);
    expect(unrendered(manifests, rowsOf(doc))).toEqual([]);
  });

  it('would notice a renamed object, a row too many and a Lease left out', () => {
    const rows = rowsOf(docs[0]!);
    const renamed = manifests.map((m) =>
      m.kind === 'Role' && m.metadata.name === 'retrospective-viewer'
        ? { ...m, metadata: { ...m.metadata, name: 'retrospective-reader' } }
        : m,
    );
    expect(unlisted(renamed, rows)).toEqual(['Role retrospective-reader']);
    expect(unrendered(renamed, rows)).toEqual(['Role retrospective-viewer']);
    const noLeader = rows.filter(([kind]) => kind !== 'Lease');
    expect(unlisted(manifests, noLeader)).toEqual([
      'Lease retrospective',
      'Lease retrospective-controller-leader',
    ]);
    const table = '## What the chart creates\n\n| kind | name |\n|---|---|\n| Role (x) | `a` |\n';
    expect(tableRows(table)).toEqual([['Role', 'a']]);
  });
});
