import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The repository documents itself: nothing in it may point at documents outside it (the
 * documents the project was first described in live beside the checkout on some machines, never
 * in it; docs/design.md and the README's seed section carry what the project took from them),
 * and every relative link in its Markdown leads to a file and heading that exist.
 */
const root = resolve(import.meta.dirname, '..');
const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
  .split('\0')
  .filter((file) => file && !file.includes('node_modules/') && existsSync(join(root, file)));

// Spelled in pieces, so that this file does not name them itself.
const outside = [
  ['..', 'shared'].join('/'),
  ...['DESIGN', 'STYLE', 'PITFALLS'].map((name) => `${name}.md`),
  ['seeds', ''].join('/'),
];
/** Files that may name them, and why (none today). */
const allowed: Record<string, string> = {};

/** Every place a tracked text file names a path outside the repository, as `file:line: text`. */
function outsideMentions(files: readonly string[], read: (file: string) => string) {
  return files.flatMap((file) => {
    if (file in allowed) return [];
    const text = read(file);
    if (text.includes('\0')) return [];
    return text
      .split('\n')
      .flatMap((line, i) =>
        outside.some((name) => line.includes(name)) ? [`${file}:${i + 1}: ${line.trim()}`] : [],
      );
  });
}

/** GitHub's anchor for a Markdown heading. */
const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');

const anchors = (markdown: string) =>
  [...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!));

/** Relative links of `file` whose target file or heading does not exist. */
function brokenLinks(file: string, read: (file: string) => string): string[] {
  const text = read(file);
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].flatMap(([, link]) => {
    if (/^[a-z]+:/.test(link!)) return [];
    const [path = '', anchor] = link!.split('#');
    const target = path ? relative(root, resolve(root, dirname(file), path)) : file;
    if (path && !existsSync(join(root, target))) return [`${file}: ${link!} (no such file)`];
    if (anchor && target.endsWith('.md') && !anchors(read(target)).includes(anchor))
      return [`${file}: ${link!} (no such heading)`];
    return [];
  });
}

const read = (file: string) => readFileSync(join(root, file), 'utf8');

describe('the repository documents itself', () => {
  it('names no document outside it', () => {
    expect(outsideMentions(tracked, read)).toEqual([]);
  });

  it('would notice a file that does', () => {
    const files: Record<string, string> = {
      'docs/a.md': `As ${outside[1]!} section 2 says.`,
      'x.ts': `readFileSync('${outside[0]!}/x')`,
      'ok.md': 'docs/design.md section 2',
    };
    expect(outsideMentions(Object.keys(files), (f) => files[f]!)).toEqual([
      `docs/a.md:1: As ${outside[1]!} section 2 says.`,
      `x.ts:1: readFileSync('${outside[0]!}/x')`,
    ]);
  });

  it('has Markdown whose relative links lead to files and headings that exist', () => {
    const markdown = tracked.filter((file) => file.endsWith('.md'));
    expect(markdown).toContain('docs/design.md');
    expect(markdown.flatMap((file) => brokenLinks(file, read))).toEqual([]);
  });

  it('would notice a link to a missing file or heading', () => {
    const page = '[a](design.md#2-the-lock-in-a-lease) [b](design.md#nope) [c](nope.md) [d](#x)';
    const fake = (file: string) => (file === 'docs/page.md' ? `${page}\n## X` : read(file));
    expect(brokenLinks('docs/page.md', fake)).toEqual([
      'docs/page.md: design.md#nope (no such heading)',
      'docs/page.md: nope.md (no such file)',
    ]);
  });

  it('makes anchors as GitHub does', () => {
    expect(slug('2. The lock in a Lease')).toBe('2-the-lock-in-a-lease');
    expect(slug('Locks as objects: `kubectl apply` a lock of your own')).toBe(
      'locks-as-objects-kubectl-apply-a-lock-of-your-own',
    );
  });
});
