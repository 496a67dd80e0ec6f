import t from 'tap'
import { sql } from 'kysely'
import { build, seedEvent, sqlClient } from '../helpers/app.js'
import { dropPartitionsBefore, ensureMonthlyPartitions, monthStart } from '../../db/partitions.js'

interface PreparedRow { statement: string, generic_plans: number, custom_plans: number }

t.test('ingestion\'s insert is prepared once per connection, planned once, and survives month partitions changing', async (t) => {
  // One connection: every statement of the service goes through it, so what it prepared can be read on it.
  const app = await build(t, { DATABASE_POOL_MAX: '1', FORWARDER_ENABLED: 'false' })
  const post = async (event: Record<string, unknown>): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(event) })).statusCode
  const prepared = async (): Promise<PreparedRow[]> => (await sql<PreparedRow>`
    SELECT statement, generic_plans::int, custom_plans::int FROM pg_prepared_statements`.execute(app.db)).rows
  const inserts = async (): Promise<PreparedRow[]> => (await prepared()).filter((r) => r.statement.includes('INSERT INTO usage_event_keys'))

  const writes = 8
  for (let i = 0; i < writes; i++) t.equal(await post(seedEvent()), 202)
  const [insert, ...others] = await inserts()
  t.equal(others.length, 0, 'one prepared statement for every write')
  t.equal(insert.generic_plans + insert.custom_plans, writes, 'each write executed it')
  t.ok(insert.generic_plans >= writes - 5, `planned once after PostgreSQL's five custom plans (generic plans: ${insert.generic_plans})`)
  t.notOk((await prepared()).some((r) => r.statement.includes('pg_prepared_statements')), 'statements not marked stay unnamed')

  // Months created ahead and an old month dropped (the monthly maintenance and retention), under the cached plan.
  const now = new Date()
  await ensureMonthlyPartitions(app.db, 'litellm_usage_events', now, 6, monthStart(now, -3))
  const late = seedEvent()
  t.equal(await post(late), 202, 'stored after partitions were added')
  await dropPartitionsBefore(app.db, 'litellm_usage_events', monthStart(now, -1))
  const later = seedEvent()
  t.equal(await post(later), 202, 'stored after a partition was dropped')
  t.equal((await inserts()).length, 1, 'still the same prepared statement')

  const db = await sqlClient(t)
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE request_id = ANY($1)', [[late.request_id, later.request_id]])
  t.equal(rows[0].n, 2)
})

t.test('a prepared statement whose result type changed under it costs one write, then a fresh connection prepares it again', async (t) => {
  const app = await build(t, { DATABASE_POOL_MAX: '1', FORWARDER_ENABLED: 'false' })
  const post = async (event: Record<string, unknown>): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(event) })).statusCode
  t.equal(await post(seedEvent()), 202)
  const db = await sqlClient(t)
  // A migration run by another replica: a column the insert returns changes type.
  await db.query('ALTER TABLE usage_event_keys ALTER COLUMN fingerprint TYPE varchar')
  t.teardown(async () => { await db.query('ALTER TABLE usage_event_keys ALTER COLUMN fingerprint TYPE text') })
  const refused = seedEvent()
  t.ok(await post(refused) >= 500, 'the write on the stale statement fails (nothing acknowledged)')
  const stored = seedEvent()
  t.equal(await post(stored), 202, 'the next write, on a new connection, is stored')
  t.equal(await post(refused), 202, 'and so is the one refused, sent again')
  const { rows } = await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE request_id = ANY($1)', [[refused.request_id, stored.request_id]])
  t.equal(rows[0].n, 2)
})
