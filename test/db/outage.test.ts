import t from 'tap'
import pg from 'pg'
import { POSTGRES_URL, build, seedEvent, sqlClient, testDatabaseUrl } from '../helpers/app.js'

/** Makes this file's database unreachable, as a PostgreSQL restart or failover does, without touching others. */
async function outage (databaseUrl: string, on: boolean): Promise<void> {
  const name = new URL(databaseUrl).pathname.slice(1)
  const admin = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
  await admin.connect()
  await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS ${on ? 'false' : 'true'}`)
  if (on) await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name])
  await admin.end()
}

t.test('PostgreSQL going away: 503 for every event meanwhile, no crash, recovery without a restart', async (t) => {
  const databaseUrl = await testDatabaseUrl()
  const app = await build(t, { DATABASE_CONNECT_TIMEOUT_MS: '1000' })
  const post = (body: unknown, url = '/webhooks/litellm') =>
    app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })

  // Warm the pool so that idle connections exist to be killed: their errors must not crash the process.
  await Promise.all(Array.from({ length: 10 }, () => post(seedEvent())))
  const crashes: unknown[] = []
  const onUncaught = (err: unknown) => { crashes.push(err) }
  process.on('uncaughtException', onUncaught)
  t.teardown(() => { process.off('uncaughtException', onUncaught) })

  await outage(databaseUrl, true)
  t.teardown(() => outage(databaseUrl, false))
  const lost = seedEvent()
  const during = await Promise.all([post(lost), post(lost), post([seedEvent(), seedEvent()], '/webhooks/litellm/batch')])
  for (const res of during) {
    t.equal(res.statusCode, 503, 'never a 2xx for an event that was not committed')
    t.match(res.json(), { code: 'database_unavailable', message: /nothing was stored/ })
  }
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 503)
  t.match(ready.json().checks.database, { status: 'down' })
  t.equal((await app.inject('/health/live')).statusCode, 200, 'the process is alive')

  await outage(databaseUrl, false)
  const after = await post(lost)
  t.equal(after.statusCode, 202, 'the same event is accepted once PostgreSQL is back')
  t.equal((await app.inject('/health/ready')).statusCode, 200)
  t.same(crashes, [], 'no uncaught exception')

  const db = await sqlClient(t)
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE request_id = $1', [lost.request_id])
  t.equal(rows[0].n, 1)
})
