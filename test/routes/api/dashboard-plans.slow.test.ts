import t from 'tap'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import { build, sqlClient, testDatabaseUrl } from '../../helpers/app.js'
import { problemGroups, sourceActivity, unmappedIdentities, usageCells } from '../../../plugins/app/dashboard/repository.js'
import { oldestUnsentAgeSeconds, unmappedReasons } from '../../../plugins/app/usage-events/repository.js'
import type { Database } from '../../../db/database.js'
import { ensureMonthlyPartitions } from '../../../db/partitions.js'

// Slow lane: 100k rows take a while to insert and vacuum on a shared machine.
const OFFLINE = { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', LAGO_API_KEY: '' }

/** A Kysely whose every SELECT is also EXPLAINed: the plans of the exact SQL the repository runs. */
function explaining (url: string, plans: string[]): Kysely<Database> {
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  const connect = pool.connect.bind(pool)
  const wrapped = Object.assign(Object.create(pool) as pg.Pool, {
    connect: async () => {
      const client = await connect()
      const query = client.query.bind(client) as (text: string, values?: unknown[]) => Promise<pg.QueryResult>
      return Object.assign(Object.create(client) as pg.PoolClient, {
        query: async (text: string, values?: unknown[]) => {
          if (/^\s*(SELECT|WITH)/i.test(text)) {
            const { rows } = await query(`EXPLAIN ${text}`, values)
            plans.push(rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n'))
          }
          return await query(text, values)
        },
        release: () => client.release()
      })
    }
  })
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: wrapped }) })
}

t.test('with 100k stored events the aggregations read index ranges, never the whole table', async (t) => {
  const app = await build(t, OFFLINE) // migrates this file's database
  const db = await sqlClient(t)
  // The months of the 100 days below, as a deployment running that long has them (else the default partition).
  await ensureMonthlyPartitions(app.db, 'litellm_usage_events', new Date(), 2, new Date(Date.now() - 101 * 86_400_000))
  await db.query(`
    INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, source, status, cost_usd,
                                      total_tokens, "timestamp", received_at, processed_at, fingerprint, last_error)
    SELECT 'bulk-' || i, 'customer-' || (i % 50), 'model-' || (i % 7), 'openai', (ARRAY['webhook', 'generic_api', 'openmeter'])[1 + i % 3],
           CASE WHEN i % 500 = 0 THEN 'dead' WHEN i % 700 = 0 THEN 'unmapped' ELSE 'forwarded' END,
           (i % 1000) / 100000.0, i % 4000,
           now() - make_interval(secs => i * 86.4), now() - make_interval(secs => i * 86.4), now() - make_interval(secs => i * 86.4 - 1),
           md5(i::text), CASE WHEN i % 500 = 0 THEN '{"kind":"rejected","message":"bulk"}'::jsonb END
      FROM generate_series(1, 100000) AS i`)
  await db.query('VACUUM ANALYZE litellm_usage_events')
  const plans: string[] = []
  const kysely = explaining(await testDatabaseUrl(), plans)
  t.teardown(() => kysely.destroy())

  // Of one organization (every view is): the rows above are default's.
  await sourceActivity(kysely, 'default', 60)
  await problemGroups(kysely, 'default', 50)
  await unmappedIdentities(kysely, 'default', 50)
  const cells = await usageCells(kysely, 'default', new Date(Date.now() - 3 * 86_400_000), new Date())
  t.ok(cells.length > 0, 'the last 3 days have usage')
  // GET /webhooks/stats' per-organization reads of the events table.
  await unmappedReasons(kysely, 'default')
  await oldestUnsentAgeSeconds(kysely, 'default')
  t.equal(plans.length, 6)
  // Month partitions: a sequential scan of an empty one (the months ahead) costs nothing; of a month with events, it
  // would read the month.
  const filled = (await db.query('SELECT DISTINCT tableoid::regclass::text AS name FROM litellm_usage_events')).rows.map((r: { name: string }) => r.name)
  t.ok(filled.length >= 4, `the events lie in ${filled.join(', ')}`)
  for (const plan of plans) {
    for (const month of filled) t.notMatch(plan, new RegExp(`Seq Scan on ${month}\\b`), `no full scan of ${month}`, { plan })
    t.match(plan, /Index (Only )?Scan|Bitmap Index Scan/, 'an index', { plan })
  }
  t.match(plans[3], /Index Only Scan using litellm_usage_events_y\d{4}m\d{2}_timestamp_organization_id_cus_idx/, 'usage is an index-only range scan')
})
