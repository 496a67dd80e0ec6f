import neostandard from 'neostandard'

const devDependencies = ['big.js', 'fast-check', 'playwright-core', 'autocannon', 'tap', 'yaml', '@apidevtools/swagger-parser']
  .map((name) => ({ name, message: 'a dev dependency: the production image does not have it' }))

// neostandard: the standard style with TypeScript rules (the house style of fastify/demo).
export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'coverage/**', '.tap/**', 'data/**', 'node_modules/**', 'test-output/**'] }),
  {
    rules: {
      // `void promise` marks a deliberately unawaited call (timers, background loops).
      'no-void': ['error', { allowAsStatement: true }]
    }
  },
  {
    // What runs in the image must not import a dev dependency: `npm ci --omit=dev` leaves them out (type-only imports
    // such as lago-javascript-client's vanish at build time).
    files: ['*.ts', 'plugins/**', 'routes/**', 'schemas/**', 'db/**', 'scripts/*.ts'],
    ignores: ['scripts/lago-sim.ts', 'scripts/bench*.ts', 'scripts/demo.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: devDependencies }]
    }
  },
  {
    // Routes are HTTP adapters: a service is reached through its plugin's decorator (fastify.forwarder.retry, ...),
    // and what else a route needs (a reader, an error class, a type) is exported by the plugin's index.
    files: ['routes/**'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: devDependencies,
        patterns: [{
          group: ['**/plugins/app/*/*', '!**/plugins/app/*/index.js', '**/plugins/app/*/*/**'],
          message: 'routes use a plugin through its decorator or its index.ts, never its internals'
        }]
      }]
    }
  }
]
