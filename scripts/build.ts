// `npm run build`: the service and its scripts compiled into dist/ (scripts/compile.ts says how); type checking is
// `npm run typecheck`.
import { cp, readdir, rm } from 'node:fs/promises'
import path from 'node:path'
import { build } from 'esbuild'
import { compileOptions, typescriptFiles } from './compile.js'

const root = path.join(import.meta.dirname, '..')
const out = path.join(root, 'dist')
const FOLDERS = ['plugins', 'routes', 'schemas', 'db', 'scripts']

const entries = (await readdir(root)).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).map((f) => path.join(root, f))
for (const folder of FOLDERS) entries.push(...await typescriptFiles(path.join(root, folder), new Set(['static'])))
// The benchmark's reference, a bare Fastify server, loads Fastify from node_modules as any Fastify app does.
const bare = path.join(root, 'scripts', 'bench-bare-server.ts')

// A fresh tree: chunk names change with their content, and a deleted source must not leave its output behind.
await rm(out, { recursive: true, force: true })
await build(await compileOptions(entries.filter((f) => f !== bare), root, out))
if (entries.includes(bare)) {
  await build({ entryPoints: [bare], outdir: out, outbase: root, format: 'esm', platform: 'node', target: 'node20', sourcemap: 'linked', logLevel: 'warning' })
}
// The dashboard's page, served from next to its compiled route.
await cp(path.join(root, 'routes', 'dashboard', 'static'), path.join(out, 'routes', 'dashboard', 'static'), { recursive: true })
