import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { Pool } from 'undici'
import { REDIS_URL, runTypeScript, seedEvent, sqlClient, testDatabaseUrl, uid } from '../../../helpers/app.js'
import { FAST_FORWARDING, until } from '../../../helpers/forwarding.js'
import { simulator } from '../../../helpers/lago.js'
import { freePort } from '../../../../scripts/free-port.js'

const root = path.join(import.meta.dirname, '..', '..', '..', '..')

/** A real service process: a replica, as compose --scale runs them. */
async function replica (env: Record<string, string | undefined>): Promise<{ child: ChildProcess, port: number }> {
  const port = await freePort()
  const child = spawn(process.execPath, runTypeScript(path.join(root, 'server.ts')), {
    cwd: os.tmpdir(),
    env: { PATH: process.env.PATH, FASTIFY_AUTOLOAD_TYPESCRIPT: '1', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'error', ...env },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  await until(async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health/live`)
      return res.ok
    } catch { return false }
  }, `replica on ${port}`)
  return { child, port }
}

t.test('two replicas forward together; one killed mid-batch: nothing billed twice, nothing stuck', async (t) => {
  const sim = await simulator(t, { recordEventBodies: true })
  const db = await sqlClient(t)
  const env = {
    ...FAST_FORWARDING,
    DATABASE_URL: await testDatabaseUrl(),
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${uid()}:`,
    LAGO_API_URL: sim.url,
    LAGO_API_KEY: sim.apiKey,
    FORWARDER_LEASE_MS: '2000',
    FORWARDER_CONCURRENCY: '4',
    LAGO_TIMEOUT_MS: '5000'
  }
  const a = await replica(env)
  const b = await replica(env)
  t.teardown(() => { a.child.kill('SIGKILL'); b.child.kill('SIGKILL') })

  const run = uid('replicas')
  const customers = [`${run}-x`, `${run}-y`, `${run}-z`]
  const client = new Pool(`http://127.0.0.1:${a.port}`, { connections: 4 })
  t.teardown(() => client.destroy())
  const post = async (events: unknown[]): Promise<void> => {
    const res = await client.request({ method: 'POST', path: '/webhooks/litellm/batch', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) })
    await res.body.dump()
    if (res.statusCode !== 202) throw new Error(`ingest ${res.statusCode}`)
  }
  const now = Math.floor(Date.now() / 1000)
  const events = Array.from({ length: 3000 }, (_, i) => seedEvent({ request_id: `${run}-${i}`, customer_id: customers[i % 3], timestamp: now - 30 }))
  // Slow batches (Lago stores them after 1.5 s, whoever waits), so that replica A is surely in the middle of
  // some when it dies.
  sim.faults.delayNext(16, 1500, { route: 'POST /api/v1/events/batch' })
  for (let i = 0; i < events.length; i += 1000) await post(events.slice(i, i + 1000))
  // Replica A holds claims (its worker ids start with its pid): with every batch slowed, it is mid-batch.
  // Claiming comes before sending: wait until one of A's claimed batches has reached the simulator, so that
  // A surely dies with a batch in flight (held but not yet answered).
  const heldByA = async (): Promise<string[]> => (await db.query('SELECT e.request_id FROM litellm_usage_events e JOIN usage_event_claims c ON c.event_id = e.id WHERE e.request_id LIKE $1 AND c.worker LIKE $2',
    [`${run}-%`, `${a.child.pid ?? 'none'}-%`])).rows.map((r) => r.request_id as string)
  await until(async () => (await heldByA()).some((id) => sim.requests.received.has(id)), 'replica A to have a batch in flight at Lago')
  a.child.kill('SIGKILL')
  await once(a.child, 'exit')

  const settled = async (): Promise<Record<string, number>> => Object.fromEntries((await db.query(
    'SELECT status, count(*)::int AS n FROM litellm_usage_events WHERE request_id LIKE $1 GROUP BY status', [`${run}-%`])).rows.map((r) => [r.status, r.n]))
  await until(async () => (await settled()).forwarded === 3000, 'replica B to finish, including A\'s expired claims', 60_000)
  t.same(await settled(), { forwarded: 3000 }, 'nothing stuck, nothing dead')
  const held = (await db.query('SELECT count(*)::int AS n FROM litellm_usage_events e JOIN usage_event_claims c ON c.event_id = e.id WHERE e.request_id LIKE $1', [`${run}-%`])).rows[0].n
  t.equal(held, 0, 'no claim left behind')

  const stored = sim.state.storedEvents().filter((e) => e.transaction_id.startsWith(`${run}-`))
  t.equal(stored.length, 3000, 'Lago holds 3,000 events')
  t.equal(new Set(stored.map((e) => e.transaction_id)).size, 3000, 'each once: 0 billed twice')

  // Events sent more than once can only be those of the batches A had in flight when it died.
  const sends = new Map<string, number>()
  for (const entry of sim.requests.entries({ route: '/api/v1/events/batch' })) {
    for (const text of entry.events ?? []) {
      const id = JSON.parse(text).transaction_id as string
      if (id.startsWith(`${run}-`)) sends.set(id, (sends.get(id) ?? 0) + 1)
    }
  }
  const resent = [...sends.values()].filter((n) => n > 1).length
  t.ok(resent > 0, `replica A died with batches in flight, which went out again (${resent} events)`)
  t.ok(resent <= 4 * 100, 'only the dead replica\'s in-flight batches (4 workers of 100) went out again')
  t.same(sim.state.unbilledEvents(), [])
})
