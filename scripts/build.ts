// `npm run build`: the service and its scripts compiled into dist/ (scripts/compile.ts says how); type checking is
// `npm run typecheck`.
import { cp, mkdtemp, readdir, rename, rm } from 'node:fs/promises'
import path from 'node:path'
import { build } from 'esbuild'
import { compileOptions, typescriptFiles } from './compile.js'

const root = path.join(import.meta.dirname, '..')
const out = path.join(root, 'dist')
const FOLDERS = ['plugins', 'routes', 'schemas', 'db', 'scripts']
// Build tools, run from their sources by tsx: nothing to run in dist/ (the image has no esbuild).
const BUILD_TOOLS = new Set(['build.ts', 'build-tests.ts', 'compile.ts'].map((f) => path.join(root, 'scripts', f)))

const entries = (await readdir(root)).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).map((f) => path.join(root, f))
for (const folder of FOLDERS) entries.push(...await typescriptFiles(path.join(root, folder), new Set(['static'])))
// The benchmark's reference, a bare Fastify server, loads Fastify from node_modules as any Fastify app does.
const bare = path.join(root, 'scripts', 'bench-bare-server.ts')

// A fresh tree (chunk names change with their content, and a deleted source must not leave its output behind), built
// beside dist/ and then put in its place: a service running from dist/ (`npm run migrate` or `npm run keys` build
// first) finds a whole tree at every moment but the two renames.
const next = await mkdtemp(path.join(root, '.dist-'))
try {
  await build(await compileOptions(entries.filter((f) => f !== bare && !BUILD_TOOLS.has(f)), root, next))
  if (entries.includes(bare)) {
    await build({ entryPoints: [bare], outdir: next, outbase: root, format: 'esm', platform: 'node', target: 'node20', sourcemap: 'linked', logLevel: 'warning' })
  }
  // The dashboard's page, served from next to its compiled route.
  await cp(path.join(root, 'routes', 'dashboard', 'static'), path.join(next, 'routes', 'dashboard', 'static'), { recursive: true })
  const previous = `${next}-previous`
  await rename(out, previous).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
  await rename(next, out)
  await rm(previous, { recursive: true, force: true })
} finally {
  await rm(next, { recursive: true, force: true })
}
