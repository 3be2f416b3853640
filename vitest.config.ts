import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // graphql ships CJS (main) and ESM (module). Node, and so Apollo, loads the CJS build, while
  // Vite would resolve our sources to the ESM one: two GraphQLError classes, and `instanceof`
  // fails in error masking. One build for everyone, as under tsx.
  resolve: {
    alias: [{ find: /^graphql$/, replacement: fileURLToPath(new URL('./node_modules/graphql/index.js', import.meta.url)) }],
  },
  test: {
    include: ['tests/**/*.test.ts'],
    // End-to-end tests start real processes; give them room on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
    allowOnly: false,
  },
});
