// A private redis-server for tests that stop, hang or remove Redis under a running service, and the service as a
// real process next to it. Nothing here touches the shared Redis on 6379.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import os from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import { runTypeScript } from './app.js'
import { freePort } from '../../scripts/free-port.js'

type TestContext = { teardown: (fn: () => unknown) => void }

const root = path.join(import.meta.dirname, '..', '..')

export { freePort }

/** Polls `predicate` until it holds; the time limit only turns a hang into a failure naming what was awaited. */
export async function waitFor (predicate: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms
  while (!(await predicate())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

export interface PrivateRedis {
  port: number
  url: string
  /** A plain client (no key prefix) for looking at what the service wrote; it reconnects after a restart. */
  inspect: Redis
  start: () => Promise<void>
  /** SIGTERM and wait for the exit: Redis is gone, connections refused. */
  stop: () => Promise<void>
  /** SIGSTOP: connections stay open and accepted, nothing answers. */
  hang: () => void
  resume: () => void
}

/** A redis-server on a free port, no persistence, stopped when the test ends. */
export async function privateRedis (t: TestContext, port?: number): Promise<PrivateRedis> {
  const chosen = port ?? await freePort()
  let child: ChildProcess | undefined
  const inspect = new Redis({ port: chosen, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 })
  inspect.on('error', () => {}) // it reconnects by itself; the tests wait on what it reads
  const redis: PrivateRedis = {
    port: chosen,
    url: `redis://127.0.0.1:${chosen}`,
    inspect,
    async start () {
      child = spawn('redis-server', ['--port', String(chosen), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
      const probe = new Redis({ port: chosen, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
      probe.on('error', () => {})
      await waitFor(async () => await probe.connect().then(() => true, () => false), `redis-server on port ${chosen}`)
      probe.disconnect()
    },
    async stop () {
      const running = child
      child = undefined
      if (running === undefined || running.exitCode !== null) return
      running.kill('SIGCONT')
      running.kill('SIGTERM')
      await once(running, 'exit')
    },
    hang () { child?.kill('SIGSTOP') },
    resume () { child?.kill('SIGCONT') }
  }
  t.teardown(async () => {
    inspect.disconnect()
    await redis.stop()
  })
  return redis
}

export interface ServiceProcess {
  child: ChildProcess
  output: () => string
  baseUrl: string
}

/** server.ts as a real process on a free port, killed when the test ends. */
export async function startService (t: TestContext, env: Record<string, string | undefined>): Promise<ServiceProcess> {
  const port = await freePort()
  let output = ''
  // cwd outside the repository: a developer's .env must not leak into the test.
  const child = spawn(process.execPath, runTypeScript(path.join(root, 'server.ts')), {
    cwd: os.tmpdir(),
    env: { PATH: process.env.PATH, FASTIFY_AUTOLOAD_TYPESCRIPT: '1', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  t.teardown(() => { child.kill('SIGKILL') })
  return { child, output: () => output, baseUrl: `http://127.0.0.1:${port}` }
}
