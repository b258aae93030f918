// Removes from an installed node_modules what a production process never loads: type
// declarations, source maps, TypeScript sources, docs and empty package scopes. Run by the image
// build after `npm prune --omit=dev`; halves @kubernetes/client-node.
import { readdirSync, rmSync, rmdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';

const unused = /(\.[cm]?ts|\.map|\.md|\.markdown)$/i;
const keep = /^(package\.json|LICENSE.*|NOTICE.*)$/i;

/** Deletes unused files below `dir`; returns the number of bytes freed. */
export function prune(dir: string): number {
  let freed = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (stat.isSymbolicLink()) continue; // workspace links point at our own packages
    if (stat.isDirectory()) {
      freed += prune(path);
      if (readdirSync(path).length === 0) rmdirSync(path);
    } else if (unused.test(name) && !keep.test(name)) {
      freed += stat.size;
      rmSync(path);
    }
  }
  return freed;
}

if (import.meta.main) {
  const dir = process.argv[2] ?? 'node_modules';
  console.log(`pruned ${(prune(dir) / 1e6).toFixed(1)} MB from ${dir}`);
}
