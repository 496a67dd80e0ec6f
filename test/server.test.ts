import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { Pool } from 'undici'
import pg from 'pg'
import { REDIS_URL, runTypeScript, seedEvent, testDatabaseUrl, uid } from './helpers/app.js'
import { freePort } from '../scripts/free-port.js'
import { until } from './helpers/forwarding.js'

const root = path.join(import.meta.dirname, '..')

function startServer (env: Record<string, string | undefined>): { child: ChildProcess, output: () => string } {
  let output = ''
  // cwd outside the repository: a developer's .env must not leak into the test.
  const child = spawn(process.execPath, runTypeScript(path.join(root, 'server.ts')), {
    cwd: os.tmpdir(),
    env: { PATH: process.env.PATH, FASTIFY_AUTOLOAD_TYPESCRIPT: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  return { child, output: () => output }
}

t.test('a malformed variable stops the process with a message naming it', async (t) => {
  const { child, output } = startServer({ PORT: 'not-a-port', DATABASE_URL: await testDatabaseUrl() })
  const [code] = await once(child, 'exit')
  t.equal(code, 1)
  t.match(output(), /cannot start/)
  t.match(output(), /PORT: .*not-a-port/)
})

t.test('SIGTERM drains: every acknowledged event is stored, the process exits 0', async (t) => {
  const databaseUrl = await testDatabaseUrl()
  const port = await freePort()
  const { child, output } = startServer({ PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: databaseUrl, REDIS_URL, REDIS_KEY_PREFIX: `test:${uid()}:`, LOG_LEVEL: 'info' })
  t.teardown(() => { child.kill('SIGKILL') })
  await until(() => /Server listening/.test(output()), 'the server to listen')

  const client = new Pool(`http://127.0.0.1:${port}`, { connections: 20 })
  t.teardown(() => client.destroy())
  const customer = uid('drain')
  let stopped = false
  const acknowledged: string[] = []
  const refused: number[] = []
  const sender = async (worker: number): Promise<void> => {
    for (let i = 0; !stopped; i++) { // eslint-disable-line no-unmodified-loop-condition -- set by the test after the load
      const event = seedEvent({ customer_id: customer, request_id: `${customer}-${worker}-${i}` })
      try {
        const res = await client.request({ method: 'POST', path: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) })
        await res.body.dump()
        if (res.statusCode === 202) acknowledged.push(event.request_id as string)
        else refused.push(res.statusCode)
      } catch {
        return // connection refused or closed: the server has stopped accepting
      }
    }
  }
  const senders = Array.from({ length: 20 }, (_, w) => sender(w))
  await until(() => acknowledged.length >= 200, 'some traffic')
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  stopped = true
  await Promise.all(senders)

  t.equal(code, 0, 'clean exit')
  t.match(output(), /shutting down/)
  t.ok(refused.every((s) => s === 503), `anything refused during shutdown is a 503 (${refused.length} refused)`)
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  t.teardown(() => db.end())
  const { rows } = await db.query('SELECT request_id FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
  const stored = new Set(rows.map((r: { request_id: string }) => r.request_id))
  t.ok(acknowledged.length >= 200)
  t.equal(acknowledged.filter((id) => !stored.has(id)).length, 0, `all ${acknowledged.length} acknowledged events are stored`)
})
