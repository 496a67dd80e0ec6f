// The Containerfile's own steps, replayed outside a container (no engine runs here), so a broken image build is
// caught: the build context is a clean copy of the repository filtered by .containerignore; each stage gets its own
// root directory; COPY, RUN, ENV and WORKDIR run as written; then the final stage's CMD starts with the image's
// environment, its HEALTHCHECK answers, and its STOPSIGNAL drains an in-flight request and exits 0.
// Uses the machine's Node (the image pins the same major) and the local npm cache (no network beyond the registry).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import t from 'tap'
import { REDIS_URL, seedEvent, testDatabaseUrl, uid } from '../helpers/app.js'
import { ROOT } from './compose-config.js'
import { freePort } from '../../scripts/free-port.js'
import { until } from '../helpers/forwarding.js'

const run = promisify(execFile)

interface Instruction { op: string, args: string }
interface Stage { name: string, root: string, workdir: string, env: Record<string, string>, cmd?: string[], healthcheck?: string[], stopsignal?: string, user?: string }

/** Instructions with continuation lines joined and comments dropped. */
function parseContainerfile (text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, ' ')
  return joined.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
    const m = /^(\S+)\s*(.*)$/.exec(l) as RegExpExecArray
    return { op: m[1].toUpperCase(), args: m[2] }
  })
}

/** Docker's .dockerignore rules: ordered glob patterns, `!` re-includes, a pattern also matches a path's parents. */
function ignoreMatcher (text: string): (file: string) => boolean {
  const rules = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
    const negated = l.startsWith('!')
    const glob = path.posix.normalize((negated ? l.slice(1) : l).replace(/^\/+/, ''))
    const source = glob.split('**').map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')).join('.*')
    return { negated, re: new RegExp(`^${source}$`) }
  })
  return (file) => {
    const parts = file.split('/')
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'))
    let excluded = false
    for (const rule of rules) if (candidates.some((c) => rule.re.test(c))) excluded = !rule.negated
    return excluded
  }
}

const words = (args: string): string[] => args.split(/\s+/).filter((w) => w !== '')
const execForm = (args: string): string[] => {
  const json = JSON.parse(args.replace(/^CMD\s+/, '')) as unknown
  if (!Array.isArray(json)) throw new Error(`exec form expected: ${args}`)
  return json.map(String)
}

/** Replays the Containerfile in `work`; returns the final stage. */
async function buildStages (instructions: Instruction[], context: string, work: string, log: (line: string) => void): Promise<Stage> {
  const stages = new Map<string, Stage>()
  let stage: Stage | undefined
  const inStage = (s: Stage, p: string): string => path.join(s.root, path.posix.resolve(s.workdir, p))
  const baseEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', npm_config_prefer_offline: 'true' }

  for (const { op, args } of instructions) {
    if (op === 'FROM') {
      const [image, as, name] = words(args)
      const label = as?.toUpperCase() === 'AS' ? name : `stage${stages.size}`
      stage = { name: label, root: path.join(work, label), workdir: '/', env: {} }
      stages.set(label, stage)
      await mkdir(stage.root, { recursive: true })
      log(`FROM ${image} AS ${label}`)
      continue
    }
    if (stage === undefined) throw new Error(`${op} before FROM`)
    const s = stage
    switch (op) {
      case 'WORKDIR':
        s.workdir = path.posix.resolve(s.workdir, args)
        await mkdir(inStage(s, '.'), { recursive: true })
        break
      case 'ENV':
        for (const [, k, v] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S*)/g)) s.env[k] = v
        break
      case 'COPY': {
        const parts = words(args)
        const from = parts.find((p) => p.startsWith('--from='))?.slice('--from='.length)
        const paths = parts.filter((p) => !p.startsWith('--'))
        const dest = paths.pop() as string
        const source = from === undefined ? undefined : stages.get(from)
        if (from !== undefined && source === undefined) throw new Error(`COPY --from=${from}: no such stage`)
        for (const src of paths) {
          const origin = source === undefined ? path.join(context, src) : inStage(source, src)
          const target = dest.endsWith('/') || dest === '.' || paths.length > 1 ? path.join(inStage(s, dest), src === '.' ? '' : path.basename(src)) : inStage(s, dest)
          await cp(origin, target, { recursive: true })
        }
        log(`COPY ${args}`)
        break
      }
      case 'RUN': {
        const started = Date.now()
        await run('sh', ['-c', args], { cwd: inStage(s, '.'), env: { ...baseEnv, ...s.env }, maxBuffer: 64 * 1024 * 1024 })
          .catch((err: { stdout?: string, stderr?: string, message: string }) => {
            throw new Error(`RUN ${args} failed in stage ${s.name}:\n${err.stdout ?? ''}${err.stderr ?? err.message}`)
          })
        log(`RUN ${args} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
        break
      }
      case 'CMD': s.cmd = execForm(args); break
      case 'HEALTHCHECK': s.healthcheck = execForm(args.replace(/^(--\S+\s+)*/, '')); break
      case 'STOPSIGNAL': s.stopsignal = args; break
      case 'USER': s.user = args; break
      case 'EXPOSE': case 'LABEL': case 'ARG': break
      default: throw new Error(`the test does not replay ${op}: extend test/deploy/container-steps.slow.test.ts`)
    }
  }
  if (stage === undefined) throw new Error('no FROM in the Containerfile')
  return stage
}

function exited (child: ChildProcess): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode })
    else child.once('exit', (code, signal) => resolve({ code, signal }))
  })
}

t.test('the Containerfile\'s steps build a runtime that starts, answers its health check and drains on its stop signal', async (t) => {
  const work = await mkdtemp(path.join(tmpdir(), 'lai-image-'))
  t.teardown(() => rm(work, { recursive: true, force: true }))
  const log = (line: string): void => { t.comment(line) }

  // A clean copy: the files a commit would hold (tracked, or untracked and not git-ignored), then .containerignore.
  const { stdout } = await run('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 })
  const ignored = ignoreMatcher(await readFile(path.join(ROOT, '.containerignore'), 'utf8'))
  const files = stdout.split('\0').filter((f) => f !== '')
  const contextFiles = files.filter((f) => !ignored(f))
  const context = path.join(work, 'context')
  for (const f of contextFiles) await cp(path.join(ROOT, f), path.join(context, f))
  t.ok(contextFiles.includes('server.ts') && contextFiles.includes('package-lock.json'), 'the build context has the sources and the lockfile')
  for (const f of contextFiles) t.notOk(/^(test\/|\.env|\.git|node_modules\/|dist\/)/.test(f), `${f} belongs in the build context`)
  t.notOk(contextFiles.some((f) => /^scripts\/(lago-simulator|litellm-simulator)\/|^scripts\/(lago-sim|bench|demo)/.test(f)), 'no simulator or benchmark in the build context')
  t.equal(await readFile(path.join(ROOT, '.dockerignore'), 'utf8'), await readFile(path.join(ROOT, '.containerignore'), 'utf8'),
    '.dockerignore (Docker) and .containerignore (Podman) are the same')

  const instructions = parseContainerfile(await readFile(path.join(ROOT, 'Containerfile'), 'utf8'))
  const runtime = await buildStages(instructions, context, work, log)
  const app = path.join(runtime.root, runtime.workdir)

  t.same((await readdir(app)).sort(), ['dist', 'node_modules', 'package.json'], 'the runtime holds the built output, production dependencies and package.json only')
  const builtScripts = await readdir(path.join(app, 'dist', 'scripts'))
  for (const dev of ['lago-simulator', 'litellm-simulator', 'lago-sim.js', 'bench.js', 'demo.js']) t.notOk(builtScripts.includes(dev), `no ${dev} in the image`)
  const modules = await readdir(path.join(app, 'node_modules'))
  for (const dev of ['typescript', 'tap', 'tsx', 'autocannon']) t.notOk(modules.includes(dev), `no devDependency ${dev}`)
  for (const dep of ['fastify', 'pg', 'kysely']) t.ok(modules.includes(dep), `production dependency ${dep}`)
  t.ok(runtime.user !== undefined && runtime.user !== 'root' && runtime.user !== '0', `runs as a non-root user (${runtime.user ?? 'root'})`)
  t.equal(runtime.stopsignal, 'SIGTERM')
  t.ok(runtime.cmd !== undefined && runtime.healthcheck !== undefined, 'CMD and HEALTHCHECK in exec form')
  t.match(runtime.healthcheck?.join(' '), /\/health\/live/, 'the image\'s health check probes liveness')

  // Start it as the engine would: the image's ENV plus what compose sets, nothing else from this machine.
  const port = await freePort()
  const databaseUrl = await testDatabaseUrl()
  const token = `tok-${uid()}`
  const env = {
    PATH: process.env.PATH ?? '',
    ...runtime.env,
    PORT: String(port),
    DATABASE_URL: databaseUrl,
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${uid()}:`,
    WEBHOOK_TOKENS: token,
    LOG_LEVEL: 'info',
    LOG_REQUESTS: 'true'
  }
  const [command, ...args] = runtime.cmd as string[]
  const child = spawn(command, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })

  const base = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  for (;;) {
    const up = await fetch(`${base}/health/live`).then((r) => r.ok, () => false)
    if (up) break
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the service did not start:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.equal(runtime.env.NODE_ENV, 'production', 'the image runs with NODE_ENV=production')

  const healthcheck = async (): Promise<number> => {
    const [hc, ...hcArgs] = runtime.healthcheck as string[]
    return await run(hc, hcArgs, { cwd: app, env }).then(() => 0, (err: { code?: number }) => err.code ?? 1)
  }
  t.equal(await healthcheck(), 0, 'HEALTHCHECK passes while the service runs')

  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  const first = seedEvent()
  const accepted = await fetch(`${base}/webhooks/litellm`, { method: 'POST', headers: auth, body: JSON.stringify(first) })
  t.equal(accepted.status, 202, 'an event is accepted')

  // An event whose request is in flight when the stop signal arrives: headers and half the body before it,
  // the rest after. Draining means it is still answered and stored.
  const inFlight = seedEvent()
  const body = JSON.stringify(inFlight)
  const socket = connect(port, '127.0.0.1')
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  let response = ''
  socket.on('data', (d: Buffer) => { response += d.toString() })
  const socketClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.write(`POST /webhooks/litellm HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`)
  socket.write(body.slice(0, 20))
  // The service logs each request when its headers are in (LOG_REQUESTS): the first event, then this one.
  await until(() => (output.match(/"url":"\/webhooks\/litellm".*"msg":"incoming request"|"msg":"incoming request".*"url":"\/webhooks\/litellm"/g) ?? []).length >= 2, 'the in-flight request to be received')

  const exit = exited(child)
  child.kill(runtime.stopsignal as NodeJS.Signals)
  await until(() => /shutting down/.test(output), 'the service to start draining')
  const refused = await fetch(`${base}/health/live`).then((r) => `answered ${r.status}`, (err: Error & { cause?: { code?: string } }) => err.cause?.code ?? err.message)
  t.not(refused, 'answered 200', `no new request is served once draining (${refused})`)
  socket.write(body.slice(20))
  await socketClosed
  t.match(response, /^HTTP\/1\.1 202 /, 'the in-flight request is answered 202')

  const { code, signal } = await exit
  t.equal(code, 0, `exits 0 after draining${code === 0 ? '' : `:\n${output}`}`)
  t.equal(signal, null)
  t.match(output, /shutting down/, 'logs the shutdown')

  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  const { rows } = await db.query('SELECT request_id FROM litellm_usage_events WHERE request_id = ANY($1) ORDER BY id', [[first.request_id, inFlight.request_id]])
  t.same(rows.map((r: { request_id: string }) => r.request_id), [first.request_id, inFlight.request_id], 'both events are stored, the in-flight one included')
  t.equal(await healthcheck(), 1, 'HEALTHCHECK fails once the service is gone')
})
