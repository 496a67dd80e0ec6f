import t from 'tap'
import pg from 'pg'
import { POSTGRES_URL, build, seedEvent, sqlClient, testConfig, testDatabaseUrl } from '../helpers/app.js'
import { buildApp } from '../../app.js'
import { until } from '../helpers/forwarding.js'
import { INGEST_TOKEN, postGeneric } from '../helpers/litellm.js'
import { simulateCall, standardLoggingPayload } from '../../scripts/litellm-simulator/index.js'

/** Makes this file's database unreachable, as a PostgreSQL restart or failover does, without touching others. */
async function outage (databaseUrl: string, on: boolean): Promise<void> {
  const name = new URL(databaseUrl).pathname.slice(1)
  const admin = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
  await admin.connect()
  await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS ${on ? 'false' : 'true'}`)
  if (on) {
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name])
    // Backends exit one by one: the outage is complete once none of this database's is left.
    await until(async () => (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name])).rows[0].n === 0, 'every backend of the database to exit')
  }
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

/** The backend of this file's database that waits on a lock (the service's statement, blocked by the test). */
async function blockedBackend (admin: pg.Client, databaseUrl: string): Promise<number | undefined> {
  const name = new URL(databaseUrl).pathname.slice(1)
  const { rows } = await admin.query(`SELECT pid FROM pg_stat_activity
     WHERE datname = $1 AND state = 'active' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`, [name])
  return rows[0]?.pid
}

t.test('a connection killed mid-statement: 503 with Retry-After saying the outcome is unknown, no crash, the resend is stored once', async (t) => {
  const databaseUrl = await testDatabaseUrl()
  const app = await build(t, { DATABASE_CONNECT_TIMEOUT_MS: '1000' })
  const crashes: unknown[] = []
  const onUncaught = (err: unknown) => { crashes.push(err) }
  process.on('uncaughtException', onUncaught)
  t.teardown(() => { process.off('uncaughtException', onUncaught) })

  // The test inserts the same request_id in a transaction it keeps open: the service's INSERT waits on it,
  // checked out and active, when its backend is terminated (as a restart or a failover does).
  const event = seedEvent()
  const blocker = await sqlClient(t)
  await blocker.query('BEGIN')
  // (Its dedupe key: a request_id is unique in usage_event_keys.)
  await blocker.query('INSERT INTO usage_event_keys (organization_id, request_id, event_id, fingerprint) VALUES (\'default\', $1, 0, \'f\')', [event.request_id])
  const answer = app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(event) })
  // Watched from another session: pg_stat_activity is read once per transaction, and the blocker's stays open.
  const watcher = await sqlClient(t)
  let pid: number | undefined
  await until(async () => (pid = await blockedBackend(watcher, databaseUrl)) !== undefined, 'the INSERT to wait on the lock')
  await watcher.query('SELECT pg_terminate_backend($1)', [pid])
  const res = await answer
  await blocker.query('ROLLBACK')

  t.equal(res.statusCode, 503)
  t.ok(Number(res.headers['retry-after']) > 0, `Retry-After: ${String(res.headers['retry-after'])}`)
  t.match(res.json(), { code: 'database_unavailable', message: /unknown/ })
  t.notMatch(res.json().message, /nothing was stored/, 'the statement may have committed: no false claim')
  // The socket's end arrives after the error: give it a turn of the event loop to crash the process, if it can.
  await until(async () => (await app.inject('/health/ready')).statusCode === 200, 'PostgreSQL to be ready again')
  t.same(crashes, [], 'no uncaught exception')

  const again = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(event) })
  t.equal(again.statusCode, 202, 'the resend is accepted')
  const { rows } = await blocker.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE request_id = $1', [event.request_id])
  t.equal(rows[0].n, 1, 'and stored once')
})

t.test('an outage is logged when it starts and when it ends, not once per refused request', async (t) => {
  const databaseUrl = await testDatabaseUrl()
  const lines: Array<{ level: number, msg: string, refused_requests?: number }> = []
  const config = await testConfig({ DATABASE_CONNECT_TIMEOUT_MS: '1000', LOG_LEVEL: 'info' })
  const app = await buildApp(config, { logger: { level: 'info', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  t.teardown(() => app.close())
  await app.ready()
  const post = (body: unknown) =>
    app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })

  await outage(databaseUrl, true)
  t.teardown(() => outage(databaseUrl, false))
  // Once every backend is gone (while they exit one by one, a statement on a live one may still succeed and end the
  // outage just begun), the first refused request begins it, if a background statement has not already.
  t.equal((await post(seedEvent())).statusCode, 503)
  const started = lines.filter((l) => l.level >= 40)
  t.match(started.at(-1)?.msg, /PostgreSQL is unavailable/, 'a line when it starts')
  const before = lines.length
  const refused = await Promise.all(Array.from({ length: 60 }, () => post(seedEvent())))
  t.ok(refused.every((r) => r.statusCode === 503), 'all refused')
  const warnings = lines.slice(before).filter((l) => l.level >= 40)
  t.same(warnings.map((w) => w.msg), [], 'no line of their own for 60 refused requests')

  await outage(databaseUrl, false)
  t.equal((await post(seedEvent())).statusCode, 202)
  const back = lines.slice(before).filter((l) => /PostgreSQL answers again/.test(l.msg))
  t.equal(back.length, 1, 'one line when it ends')
  t.ok((back[0]?.refused_requests ?? 0) >= 60, `counting the refused requests (${JSON.stringify(back[0])})`)
})

t.test('a connection killed inside a transaction (LiteLLM call lock): 503 that nothing was stored, no crash, the resend is stored once', async (t) => {
  const databaseUrl = await testDatabaseUrl()
  const app = await build(t, { DATABASE_CONNECT_TIMEOUT_MS: '1000', WEBHOOK_TOKENS: INGEST_TOKEN })
  const crashes: unknown[] = []
  const onUncaught = (err: unknown) => { crashes.push(err) }
  process.on('uncaughtException', onUncaught)
  t.teardown(() => { process.off('uncaughtException', onUncaught) })

  // A call's write takes an advisory lock on its LiteLLM id inside a transaction; the test holds that lock, so
  // the service's transaction waits, open, on a checked-out connection, when its backend is terminated.
  const body = standardLoggingPayload(simulateCall({ team: 'outage-team' }))
  const admin = await sqlClient(t)
  await admin.query('SELECT pg_advisory_lock(hashtextextended(\'litellm-call:\' || $1, 0))', [body.id])
  const answer = postGeneric(app, [body])
  let pid: number | undefined
  await until(async () => (pid = await blockedBackend(admin, databaseUrl)) !== undefined, 'the write to wait on the call lock')
  await admin.query('SELECT pg_terminate_backend($1)', [pid])
  const res = await answer
  await admin.query('SELECT pg_advisory_unlock_all()')

  t.equal(res.statusCode, 503)
  t.ok(Number(res.headers['retry-after']) > 0, `Retry-After: ${String(res.headers['retry-after'])}`)
  t.match(res.json(), { code: 'database_unavailable', message: /nothing was stored/ }, 'the transaction never reached COMMIT')
  await until(async () => (await app.inject('/health/ready')).statusCode === 200, 'PostgreSQL to be ready again')
  t.same(crashes, [], 'no uncaught exception')

  const again = await postGeneric(app, [body])
  t.equal(again.statusCode, 202, `the resend is stored: ${again.body}`)
  t.equal(again.json().accepted, 1)
  const { rows } = await admin.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE litellm_id = $1', [body.id])
  t.equal(rows[0].n, 1, 'once')
})
