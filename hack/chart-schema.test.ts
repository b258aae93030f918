import { describe, expect, it } from 'vitest';
import { describeSchema, schemaText, withAlertNames } from './chart-schema.ts';

const schema = {
  type: 'object',
  properties: {
    image: {
      type: 'object',
      properties: { tag: { type: 'string', description: 'stale words' } },
    },
    labels: { type: 'object' },
  },
};

describe("the chart schema's descriptions", () => {
  it("come from each documented key's comment, replacing what was there, the rest untouched", () => {
    const { schema: described, missing } = describeSchema(schema, [
      { key: 'image.tag', type: 'string', default: '""', description: 'The tag.' },
      { key: 'labels', type: 'object', default: '{}', description: 'Free-form labels.' },
    ]);
    expect(missing).toEqual([]);
    expect(described).toEqual({
      type: 'object',
      properties: {
        image: {
          type: 'object',
          properties: { tag: { type: 'string', description: 'The tag.' } },
        },
        labels: { type: 'object', description: 'Free-form labels.' },
      },
    });
    expect(schema.properties.image.properties.tag.description).toBe('stale words');
  });

  it('name the documented keys the schema lacks', () => {
    const { missing } = describeSchema(schema, [
      { key: 'image.digest', type: 'string', default: '""', description: 'A digest.' },
      { key: 'nowhere.deep', type: 'int', default: '1', description: 'Nothing.' },
    ]);
    expect(missing).toEqual(['image.digest', 'nowhere.deep']);
  });

  it('are written as two-space JSON ending in a newline', () => {
    expect(schemaText({ type: 'object' })).toBe('{\n  "type": "object"\n}\n');
  });

  it("accept per-alert overrides for the mixin's alert names only, and need the alerts key to put them in", () => {
    const alerts = { type: 'object', additionalProperties: false, properties: { Old: {} } };
    const chart = {
      properties: { monitoring: { properties: { prometheusRule: { properties: { alerts } } } } },
    };
    expect(
      withAlertNames(chart, ['RetrospectiveA', 'RetrospectiveB']).properties?.monitoring?.properties
        ?.prometheusRule?.properties?.alerts,
    ).toEqual({
      type: 'object',
      additionalProperties: false,
      properties: {
        RetrospectiveA: expect.objectContaining({ additionalProperties: false }) as unknown,
        RetrospectiveB: {
          type: 'object',
          additionalProperties: false,
          properties: {
            enabled: { type: 'boolean' },
            severity: { type: 'string', enum: ['critical', 'warning', 'info'] },
          },
        },
      },
    });
    expect(() => withAlertNames({ properties: {} }, ['RetrospectiveA'])).toThrow(
      /lacks monitoring.prometheusRule.alerts/,
    );
  });
});
