// values.schema.json's descriptions, from the same `# --` comments of values.yaml as the README's
// values table: the schema's structure and types are written by hand, its descriptions never.
import type { ValueRow } from './chart-docs.ts';

/** A node of the chart's JSON schema, as far as this file reads it. */
export interface SchemaNode {
  description?: string;
  properties?: Record<string, SchemaNode>;
  [keyword: string]: unknown;
}

/**
 * A copy of `schema` where each documented key's node carries its comment as `description`, and
 * the keys documented in values.yaml that the schema does not have (an error: fix the schema).
 */
export function describeSchema(
  schema: SchemaNode,
  rows: readonly ValueRow[],
): { schema: SchemaNode; missing: string[] } {
  const copy = structuredClone(schema);
  const missing: string[] = [];
  for (const row of rows) {
    let node: SchemaNode | undefined = copy;
    for (const key of row.key.split('.')) node = node?.properties?.[key];
    if (node) node.description = row.description;
    else missing.push(row.key);
  }
  return { schema: copy, missing };
}

/** A copy of `schema` that accepts overrides (monitoring.prometheusRule.alerts) for these alerts only. */
export function withAlertNames(schema: SchemaNode, names: readonly string[]): SchemaNode {
  const copy = structuredClone(schema);
  const alerts = copy.properties?.monitoring?.properties?.prometheusRule?.properties?.alerts;
  if (!alerts) throw new Error('values.schema.json lacks monitoring.prometheusRule.alerts');
  const override = {
    type: 'object',
    additionalProperties: false,
    properties: {
      enabled: { type: 'boolean' },
      severity: { type: 'string', enum: ['critical', 'warning', 'info'] },
    },
  };
  alerts.properties = Object.fromEntries(names.map((name) => [name, override]));
  return copy;
}

/** The schema text as committed: two-space JSON and a final newline. */
export const schemaText = (schema: SchemaNode) => `${JSON.stringify(schema, null, 2)}\n`;
