import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openapi } from './openapi.js';

const doc = readFileSync(resolve(import.meta.dirname, '../../docs/api.md'), 'utf8');

describe('docs/api.md and /openapi.json', () => {
  it('document the same routes', () => {
    for (const path of Object.keys(openapi.paths)) expect(doc, path).toContain(`\`${path}\``);
  });

  it('document every status code the API can answer', () => {
    const codes = new Set(
      Object.values(openapi.paths).flatMap((item) =>
        Object.values(item as Record<string, { responses?: Record<string, unknown> }>).flatMap(
          (op) => Object.keys(op.responses ?? {}),
        ),
      ),
    );
    for (const code of codes) expect(doc, code).toMatch(new RegExp(`\\b${code}\\b`));
  });

  it('document every WebSocket message type', () => {
    for (const type of ['snapshot', 'acquired', 'released']) expect(doc).toContain(`| \`${type}\``);
  });
});
