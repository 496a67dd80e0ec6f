// `npm test` runs the suite as JavaScript: this compiles every TypeScript file of the repository as `npm run build`
// compiles the service (scripts/compile.ts; no type checking: `npm run typecheck` does that) into .tap/build/ with
// the same layout, links every other file (README, compose.yaml, static assets, shell scripts) into place, and
// writes the run's .taprc there.
// Why: loading TypeScript through tsx's module hooks cost each test file about 2.5 s of CPU (half of a typical
// file's CPU), and each child process a test spawns the same again; plain JavaScript loads in a tenth of that.
// `npx tap test/x.test.ts` in the repository still runs one file through tsx (the root .taprc).
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { build } from 'esbuild'
import { compileOptions } from './compile.js'

const root = path.join(import.meta.dirname, '..')
const out = path.join(root, '.tap', 'build')
// Not part of the program or its tests; .tap/ also holds this build and tap's own state.
const SKIP = new Set(['node_modules', '.git', '.tap', 'dist', 'data', 'coverage', 'test-output'])

async function walk (dir: string, found: { code: string[], other: string[] }): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    // The root .taprc is tsx's (one file by hand); the build writes its own.
    if ((SKIP.has(entry.name) || entry.name === '.taprc') && dir === root) continue
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) await walk(full, found)
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) found.code.push(full)
    else found.other.push(full)
  }
}

const found = { code: [] as string[], other: [] as string[] }
await walk(root, found)

// A fresh tree each run (no stale file of a deleted source), keeping tap's state (.tap/build/.tap: the embedded
// test PostgreSQL's data directory, when nothing answers on 5432).
await mkdir(out, { recursive: true })
for (const entry of await readdir(out)) if (entry !== '.tap') await rm(path.join(out, entry), { recursive: true, force: true })

await build(await compileOptions(found.code, root, out))

for (const file of found.other) {
  const target = path.join(out, path.relative(root, file))
  await mkdir(path.dirname(target), { recursive: true })
  await symlink(file, target)
}

// Test files in groups (GROUP_SIZE to a process): each file run as its own process paid about 3.5 s of CPU before its
// first assertion (tap's module hooks, loading the service, compiling its schemas), more than most files' tests
// take; `npm test` was CPU-bound at 2 min 55 s. A group loads its files one after the other, each once the tests
// of the one before have ended, and each with a database of its own (beginTestFile). The slow lane keeps one
// process per file.
const GROUP_SIZE = 11
const fastFiles = found.code
  .map((file) => path.relative(root, file).split(path.sep).join('/'))
  .filter((file) => file.startsWith('test/') && file.endsWith('.test.ts') && !file.endsWith('.slow.test.ts'))
  .sort()
const groupsDir = path.join(out, 'test', 'groups')
await mkdir(groupsDir, { recursive: true })
for (let i = 0; i * GROUP_SIZE < fastFiles.length; i++) {
  const files = fastFiles.slice(i * GROUP_SIZE, (i + 1) * GROUP_SIZE)
  const name = `${String(i + 1).padStart(2, '0')}-${files[0].replace(/^test\//, '').replace(/\.test\.ts$/, '').replace(/\W+/g, '-')}`
  await writeFile(path.join(groupsDir, `${name}.test.js`), [
    '// Written by scripts/build-tests.ts: these test files, in one process, one after the other.',
    "import t from 'tap'",
    "import { beginTestFile } from '../helpers/app.js'",
    // A silent subtest prints nothing when it passes (the files' own tests are the ones counted) and fails the
    // run when a file cannot be loaded. The file's tests queue behind it; the next file's subtest is queued once
    // this one has ended, so behind them: it loads after they have run.
    ...files.map((file) => `t.comment(${JSON.stringify(file)})\nawait t.test(${JSON.stringify(file)}, { silent: true }, async () => { beginTestFile(); await import(${JSON.stringify(`../../${file.replace(/\.ts$/, '.js')}`)}) })`),
    ''
  ].join('\n'))
}

// The suite's tap configuration, as the root .taprc but for the transpiled files: no tsx hook.
await writeFile(path.join(out, '.taprc'), [
  '# Written by scripts/build-tests.ts for `npm test`: the root .taprc, for the transpiled files.',
  'plugin:',
  '  - "!@tapjs/typescript"',
  'include:',
  '  - "test/groups/*.test.js"',
  'before: test/setup/before.js',
  'after: test/setup/after.js',
  'allow-incomplete-coverage: true',
  // Coverage of transpiled files would be reported against them, not against the sources.
  'disable-coverage: true',
  'timeout: 300',
  // Files wait on PostgreSQL, Lago simulators and timers about half their time: one more file than CPUs at once.
  `jobs: ${os.availableParallelism() + 1}`,
  ''
].join('\n'))
