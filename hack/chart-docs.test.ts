import { describe, expect, it } from 'vitest';
import { valueRows, valuesTable } from './chart-docs.ts';

const yaml = `# A header that is not a value's comment.

# -- The name.
name: ""
image:
  # -- Where the image comes from.
  repository: retrospective
  # -- Its tag; empty means the appVersion.
  # It may span lines.
  tag: ""
# -- Free-form labels.
labels: {}
undocumented: 3
section:
  nested:
    # -- A deep one | with a pipe.
    deep: [a, b]
`;

describe('the chart README values table', () => {
  it('has one row per key with a "# --" comment, its type, default and whole comment', () => {
    const { rows, undocumented } = valueRows(yaml);
    expect(rows).toEqual([
      { key: 'name', type: 'string', default: '""', description: 'The name.' },
      {
        key: 'image.repository',
        type: 'string',
        default: '"retrospective"',
        description: 'Where the image comes from.',
      },
      {
        key: 'image.tag',
        type: 'string',
        default: '""',
        description: 'Its tag; empty means the appVersion. It may span lines.',
      },
      { key: 'labels', type: 'object', default: '{}', description: 'Free-form labels.' },
      {
        key: 'section.nested.deep',
        type: 'list',
        default: '["a","b"]',
        description: 'A deep one | with a pipe.',
      },
    ]);
    expect(undocumented).toEqual(['undocumented']);
  });

  it('renders a Markdown table, escaping pipes', () => {
    const table = valuesTable(valueRows(yaml).rows);
    expect(table.split('\n')[0]).toBe('| Key | Type | Default | Description |');
    expect(table).toContain(
      '| `section.nested.deep` | list | `["a","b"]` | A deep one \\| with a pipe. |',
    );
  });
});
