// How the project's TypeScript is compiled to JavaScript, for `npm run build` (scripts/build.ts: dist/) and `npm test`
// (scripts/build-tests.ts: .tap/build/). Each of the project's files stays a module of its own at its own path
// (plugins and routes are autoloaded from their folders, migrations read from theirs, import.meta.dirname means
// what it says), while the dependencies they import are bundled into shared chunks (chunks/), each bundled
// package's code once. Why: loading node_modules file by file was most of a start. Kysely alone is 279 ES modules
// (175 ms to import here, 34 ms as one file); the service started in 1,825 ms with tsc's output and 1,267 ms
// bundled (median of 7 starts each on a migrated database, 2 CPUs). The suite is built the same way, so that it
// runs the dependencies as the service does.
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import type { BuildOptions, Plugin } from 'esbuild'

/** Dependencies left in node_modules, imported from there at run time, and why. */
const FROM_NODE_MODULES = [
  // It serves the Swagger UI's page and scripts from its own package folder.
  '@fastify/swagger-ui',
  // Log transports run in worker threads started from files of pino and thread-stream.
  'pino',
  // Imported at first use, not at start (the Lago and spend-logs clients; Lago webhook signatures): a service that
  // started before `npm run migrate` or `npm run keys` rebuilt dist/ still finds them.
  'undici',
  'jose',
  // pg's optional native binding: not installed, and loaded only if asked for.
  'pg-native'
]

/** Relative imports between the project's files stay imports: every source file is a module of its own. */
const ownFilesStayModules: Plugin = {
  name: 'own-files-stay-modules',
  setup (b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => args.importer.includes(`${path.sep}node_modules${path.sep}`)
      ? undefined
      : { path: args.path, external: true })
  }
}

/**
 * esbuild options for compiling the project's TypeScript files `entryPoints` (under `base`, the repository, where
 * package.json and package-lock.json are) into `outdir`, same layout.
 */
export async function compileOptions (entryPoints: string[], base: string, outdir: string): Promise<BuildOptions> {
  // Development-only packages (tap, autocannon, playwright-core…) are not bundled: the scripts and tests that import
  // them run where they are installed, and the container image has none. A devDependency that a production package
  // also needs (yaml, for @fastify/swagger) is bundled like any dependency: the lockfile says which.
  const lock = JSON.parse(await readFile(path.join(base, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  const developmentOnly = Object.entries(lock.packages)
    .filter(([where, entry]) => entry.dev === true && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(where))
    .map(([where]) => where.slice('node_modules/'.length))
  return {
    entryPoints,
    outdir,
    outbase: base,
    bundle: true,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: [...FROM_NODE_MODULES, ...developmentOnly],
    plugins: [ownFilesStayModules],
    // Bundled CommonJS calls require() (node: modules, the packages above) and may read __dirname and __filename
    // (ioredis, to trim its friendly error stacks): ES modules have none of them. They name the output file itself.
    banner: {
      js: [
        "import { createRequire as __createRequire } from 'node:module'",
        "import { fileURLToPath as __fileURLToPath } from 'node:url'",
        'const require = __createRequire(import.meta.url)',
        'const __filename = __fileURLToPath(import.meta.url)',
        'const __dirname = import.meta.dirname'
      ].join('; ') + ';'
    },
    // A dynamic import() of a bundled CommonJS package has only a `default` export (its module.exports) where Node
    // also gives named ones: import such a package statically, or leave it in node_modules as undici is.
    // Maps without the sources' text (they are beside the build): node --enable-source-maps maps stack traces.
    sourcemap: 'linked',
    sourcesContent: false,
    logLevel: 'warning'
  }
}

/** The TypeScript files under `dir` (recursively), but declaration files and folders named in `skip`. */
export async function typescriptFiles (dir: string, skip: ReadonlySet<string> = new Set()): Promise<string[]> {
  const files: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (skip.has(entry.name)) continue
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) files.push(...await typescriptFiles(full, skip))
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) files.push(full)
  }
  return files
}
