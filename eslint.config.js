import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      '**/dist/',
      'bin/',
      '.cache/',
      'node_modules/',
      'coverage/',
      'charts/',
      '**/*.generated.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-confusing-void-expression': 'off',
      // client-node's models are data-only classes that the API hands back as plain JSON.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      '@typescript-eslint/no-misused-spread': 'off',
      // Interface implementations that need no await still return promises.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts', '**/testing/**/*.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['api-server/public/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        [
          'document',
          'window',
          'location',
          'fetch',
          'WebSocket',
          'URL',
          'CSS',
          'setTimeout',
          'AbortSignal',
          'AbortController',
          'setInterval',
          'clearTimeout',
          'sessionStorage',
          'localStorage',
          'URLSearchParams',
          'FormData',
          'confirm',
          'btoa',
          'TextEncoder',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
);
