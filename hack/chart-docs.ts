// The chart README's values table, from the `# --` comments of values.yaml (helm-docs style): every
// key with such a comment is one row, with its type, its default and the comment.
import { isMap, isScalar, isSeq, parseDocument, type Node, type Pair } from 'yaml';

export interface ValueRow {
  readonly key: string;
  readonly type: string;
  readonly default: string;
  readonly description: string;
}

/**
 * The description in a key's comment, or undefined when it has no `# --` comment. The parser
 * gives the comment above a map's first key to the map itself: `inherited` is that comment.
 */
function describe(pair: Pair, inherited: string | null | undefined): string | undefined {
  const comment = (pair.key as Node | null)?.commentBefore ?? inherited ?? '';
  const lines = comment.split('\n').map((l) => l.trim());
  const start = lines.findIndex((l) => l.startsWith('--'));
  if (start === -1) return undefined;
  return lines
    .slice(start)
    .map((l, i) => (i === 0 ? l.slice(2) : l))
    .join(' ')
    .trim();
}

function typeOf(value: unknown): string {
  if (Array.isArray(value)) return 'list';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'object';
  return typeof value === 'number' && Number.isInteger(value) ? 'int' : typeof value;
}

/** Rows for every documented key, and the paths of keys that are neither documented nor a section. */
export function valueRows(yaml: string): { rows: ValueRow[]; undocumented: string[] } {
  const doc = parseDocument(yaml);
  const rows: ValueRow[] = [];
  const undocumented: string[] = [];
  const walk = (node: unknown, prefix: string) => {
    if (!isMap(node)) return;
    for (const [index, pair] of node.items.entries()) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      const path = prefix ? `${prefix}.${key}` : key;
      const description = describe(pair, index === 0 ? node.commentBefore : undefined);
      const value: unknown =
        isMap(pair.value) || isSeq(pair.value)
          ? pair.value.toJSON()
          : isScalar(pair.value)
            ? pair.value.value
            : null;
      const section = isMap(pair.value) && pair.value.items.length > 0;
      if (description !== undefined)
        rows.push({ key: path, type: typeOf(value), default: JSON.stringify(value), description });
      else if (!section) undocumented.push(path);
      if (section && description === undefined) walk(pair.value, path);
    }
  };
  walk(doc.contents, '');
  return { rows, undocumented };
}

const cell = (text: string) => text.replace(/\|/g, '\\|');

/** The values table in Markdown. */
export function valuesTable(rows: readonly ValueRow[]): string {
  const lines = ['| Key | Type | Default | Description |', '|---|---|---|---|'];
  for (const row of rows)
    lines.push(
      `| \`${row.key}\` | ${row.type} | \`${cell(row.default)}\` | ${cell(row.description)} |`,
    );
  return `${lines.join('\n')}\n`;
}
