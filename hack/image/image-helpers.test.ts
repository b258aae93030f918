import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { extraCertificates } from './extra-ca.ts';
import { prune } from './prune-modules.ts';

const cert = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`;

describe('extra CA certificates for an image build', () => {
  it('keeps only the certificates Node does not already trust, whatever their line breaks', () => {
    const bundle = [cert('AAAA\nBBBB'), cert('CCCC'), cert('DDDD')].join('\n');
    expect(extraCertificates(bundle, [cert('AAAABBBB'), cert('DDDD')])).toEqual([cert('CCCC')]);
    expect(extraCertificates('no certificates here', [])).toEqual([]);
  });
});

describe('pruning node_modules for the image', () => {
  it('removes declarations, maps, TypeScript sources and docs, keeps code, licences and links', () => {
    const root = mkdtempSync(join(tmpdir(), 'prune-'));
    try {
      const pkg = join(root, 'node_modules/pkg');
      mkdirSync(join(pkg, 'dist'), { recursive: true });
      mkdirSync(join(root, 'node_modules/@types/empty'), { recursive: true });
      for (const file of [
        'package.json',
        'LICENSE',
        'README.md',
        'dist/index.js',
        'dist/index.d.ts',
        'dist/index.js.map',
        'src.ts',
      ])
        writeFileSync(join(pkg, file), 'x'.repeat(10));
      writeFileSync(join(root, 'node_modules/@types/empty/index.d.ts'), 'x');
      symlinkSync(join(root, 'elsewhere'), join(root, 'node_modules/link'));
      const freed = prune(join(root, 'node_modules'));
      expect(freed).toBe(41);
      expect(readdirSync(pkg).sort()).toEqual(['LICENSE', 'dist', 'package.json']);
      expect(readdirSync(join(pkg, 'dist'))).toEqual(['index.js']);
      expect(readdirSync(join(root, 'node_modules')).sort()).toEqual(['link', 'pkg']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
