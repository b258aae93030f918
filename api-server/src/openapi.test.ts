import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openapi } from './openapi.js';

const doc = readFileSync(resolve(import.meta.dirname, '../../docs/api.md'), 'utf8');

/** The text of the `### <title>` section of docs/api.md, up to the next heading. */
function section(title: string): string {
  const start = doc.indexOf(`\n### ${title}\n`);
  if (start === -1) throw new Error(`docs/api.md has no section "### ${title}"`);
  const rest = doc.slice(start + title.length + 6);
  return rest.slice(0, rest.search(/\n#{2,3} /) === -1 ? undefined : rest.search(/\n#{2,3} /));
}

/** The status codes a piece of docs/api.md names (as `200` or `423 Locked`). */
const statusesIn = (text: string) =>
  new Set([...text.matchAll(/`([1-5]\d\d)\b[^`]*`/g)].map((m) => m[1]!));

/** The status codes the OpenAPI document gives a route. */
function statusesOf(path: string): Set<string> {
  const item = (
    openapi.paths as Record<string, Record<string, { responses?: Record<string, unknown> }>>
  )[path];
  if (!item) throw new Error(`no ${path} in /openapi.json`);
  return new Set(Object.values(item).flatMap((op) => Object.keys(op.responses ?? {})));
}

const commonTable = doc.slice(
  doc.indexOf('## Errors common to every route'),
  doc.indexOf('## Operational routes'),
);
const common = new Set([...commonTable.matchAll(/^\| ([1-5]\d\d) \|/gm)].map((m) => m[1]!));

describe('docs/api.md and /openapi.json', () => {
  it.each(['check', 'avail', 'change', 'release', 'history'])(
    'document the same statuses for %s, route by route',
    (verb) => {
      const documented = statusesIn(section(verb));
      const specified = statusesOf(`/locks/{lock}/${verb}`);
      // Every status the route's section names is one the route can answer...
      for (const code of documented)
        expect(specified, `${verb}: ${code} documented, not in the spec`).toContain(code);
      // ...and every status the spec lists is in the section or in the table common to every route.
      for (const code of specified)
        expect(
          documented.has(code) || common.has(code),
          `${verb}: ${code} in the spec, not documented`,
        ).toBe(true);
    },
  );

  it('document every route', () => {
    for (const path of Object.keys(openapi.paths)) expect(doc, path).toContain(`\`${path}\``);
  });

  it('document every WebSocket message type', () => {
    for (const type of ['snapshot', 'acquired', 'released', 'queue', 'reply', 'added', 'removed'])
      expect(doc).toContain(`| \`${type}\``);
  });
});
