import t from 'tap'
import type pg from 'pg'
import { build, seedEvent, sqlClient } from '../helpers/app.js'
import { migrateToLatest } from '../../db/migrator.js'
import { scratchDatabase } from '../helpers/scratch-database.js'
import { ensureMonthlyPartitions, partitionName } from '../../db/partitions.js'
import { countByStatusQuery } from '../../plugins/app/usage-events/repository.js'

const MIGRATION = '2026_11_26_1900_usage_event_hourly_counts'
const STATUSES = ['pending', 'failed', 'forwarded', 'dead', 'unmapped', 'not_billable', 'lago_error']

/** An organization's last 24 hours counted from the events themselves, shaped as GET /webhooks/stats' last_24h. */
async function countedLast24h (db: pg.Client, organization: string): Promise<Record<string, number>> {
  const { rows } = await db.query<{ status: string, n: number }>(`SELECT status, count(*)::int AS n FROM litellm_usage_events
     WHERE organization_id = $1 AND received_at > now() - interval '24 hours' GROUP BY status`, [organization])
  const counts: Record<string, number> = Object.fromEntries(['received', ...STATUSES].map((s) => [s, 0]))
  for (const r of rows) { counts[r.status] = r.n; counts.received += r.n }
  return counts
}

/**
 * The hourly counts against a count of the events over the hours they cover (the last 25 hours, by UTC hour):
 * every (organization, hour, source, status) must agree.
 */
async function hourlyAgainstEvents (db: pg.Client): Promise<{ kept: Record<string, number>, counted: Record<string, number> }> {
  const asMap = (rows: Array<{ k: string, n: number }>): Record<string, number> => Object.fromEntries(rows.map((r) => [r.k, r.n]).sort())
  // One statement: one now() for both sides.
  const { rows } = await db.query<{ side: 'kept' | 'counted', k: string, n: number }>(`
    WITH since AS (SELECT date_trunc('hour', now() - interval '24 hours', 'UTC') AS at)
    SELECT 'kept' AS side, organization_id || ' ' || to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') || ' ' || source || '/' || status AS k,
           sum(events)::int AS n FROM usage_event_hourly_counts, since WHERE hour >= since.at GROUP BY 1, 2 HAVING sum(events) <> 0
    UNION ALL
    SELECT 'counted', organization_id || ' ' || to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') || ' ' || source || '/' || status,
           count(*)::int FROM litellm_usage_events, since WHERE received_at >= since.at GROUP BY 1, 2`)
  return { kept: asMap(rows.filter((r) => r.side === 'kept')), counted: asMap(rows.filter((r) => r.side === 'counted')) }
}

t.test(`${MIGRATION}: GET /webhooks/stats' last 24 hours stay exact through inserts, moves in time, status changes, deletes and moves between organizations`, async (t) => {
  const app = await build(t, { API_KEYS: 'hourly-key', FORWARDER_ENABLED: 'false' })
  const db = await sqlClient(t)
  await db.query("INSERT INTO organizations (id, name) VALUES ('org-hourly', 'Hourly') ON CONFLICT DO NOTHING")
  const events = Array.from({ length: 120 }, (_, i) => seedEvent({ request_id: `hourly-${i}` }))
  for (let i = 0; i < events.length; i += 40) {
    const res = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(events.slice(i, i + 40)) })
    t.equal(res.statusCode, 202)
  }
  const stats = async (): Promise<Record<string, number>> =>
    (await app.inject({ url: '/webhooks/stats', headers: { authorization: 'Bearer hourly-key' } })).json().last_24h
  t.same(await stats(), await countedLast24h(db, 'default'), 'just received')
  t.equal((await stats()).received, 120)

  // Groups of 15 by request number (hourly-0 .. hourly-119): received at the edges of the window and long before.
  const move = async (from: number, interval: string): Promise<void> => {
    await db.query(`UPDATE litellm_usage_events SET received_at = now() - interval '${interval}'
       WHERE request_id IN (SELECT 'hourly-' || g FROM generate_series($1::int, $1::int + 14) g)`, [from])
  }
  await move(0, '23 hours 55 minutes') // inside: the partial hour at the window's start (counted from events) unless it is :55 or later
  await move(15, '23 hours') // inside: a whole hour of the hourly counts
  await move(30, '24 hours 30 seconds') // just outside
  await move(45, '3 days') // long before: not in the hourly counts at all
  // By request number g: dead if g % 5 = 0, else forwarded if g % 3 = 0; deleted if g % 7 = 0.
  const numbered = (condition: string): string => `request_id LIKE 'hourly-%' AND (substring(request_id from 8)::int ${condition})`
  await db.query(`UPDATE litellm_usage_events SET status = 'forwarded' WHERE ${numbered('% 3 = 0')}`)
  await db.query(`UPDATE litellm_usage_events SET status = 'dead' WHERE ${numbered('% 5 = 0')}`)
  await db.query('UPDATE litellm_usage_events SET attempts = attempts + 1') // no status change: counts unmoved
  await db.query(`DELETE FROM litellm_usage_events WHERE ${numbered('% 7 = 0')}`)
  const toOtherOrganization = [1, 16, 31, 61, 62]
  await db.query(`UPDATE litellm_usage_events SET organization_id = 'org-hourly' WHERE ${numbered(`IN (${toOtherOrganization.join(', ')})`)}`)

  // The same, by hand.
  const byHand: Record<string, number> = Object.fromEntries(['received', ...STATUSES].map((s) => [s, 0]))
  for (let g = 0; g < 120; g++) {
    if ((g >= 30 && g < 60) || g % 7 === 0 || toOtherOrganization.includes(g)) continue
    byHand.received++
    byHand[g % 5 === 0 ? 'dead' : g % 3 === 0 ? 'forwarded' : 'pending']++
  }
  t.same(await countedLast24h(db, 'default'), byHand, 'the events themselves agree with the hand count')
  t.same(await stats(), byHand, 'last_24h equals the hand count')
  const { kept, counted } = await hourlyAgainstEvents(db)
  t.same(kept, counted, 'every organization\'s hourly counts equal a count of its events per hour')
  t.ok(Object.keys(kept).some((k) => k.startsWith('org-hourly ')), 'the moves between organizations are counted')

  // Retention deletes the hours no window reads; the window's hours stay.
  await db.query(`INSERT INTO usage_event_hourly_counts (organization_id, hour, source, status, shard, events)
     VALUES ('default', date_trunc('hour', now() - interval '30 hours', 'UTC'), 'litellm', 'pending', 0, 7)`)
  const run = await app.retention.run()
  t.ok(run.hourlyCounts >= 1, 'the stale hour deleted')
  const { rows: [{ stale }] } = await db.query<{ stale: number }>("SELECT count(*)::int AS stale FROM usage_event_hourly_counts WHERE hour < now() - interval '26 hours'")
  t.equal(stale, 0)
  t.same(await stats(), await countedLast24h(db, 'default'), 'the window unchanged by retention')
})

t.test(`${MIGRATION}: the migration counts the recent hours of a populated table, and down removes them`, async (t) => {
  const { db, pool, migrator, client: newClient } = await scratchDatabase(t, 'lai_hourly')
  const names = (await migrator.getMigrations()).map((m) => m.name)
  const before = names[names.indexOf(MIGRATION) - 1]
  t.ok(before !== undefined, 'a migration precedes it')
  t.equal((await migrator.migrateTo(before)).error, undefined)
  // 300 events, one every 10 minutes back from now: 50 hours, half of them in the last 25 hours.
  await pool.query(`INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, "timestamp", received_at, source, fingerprint, status)
    SELECT 'populated-' || g, 'c', 'm', 'p', now(), now() - g * interval '10 minutes', CASE WHEN g % 2 = 0 THEN 'litellm' ELSE 'generic_api' END, 'f',
           CASE WHEN g % 5 = 0 THEN 'forwarded' ELSE 'pending' END
      FROM generate_series(0, 299) g`)
  await migrateToLatest(db)
  const client = await newClient()
  // Hours are UTC whatever the session's time zone (India's is half an hour off the hour).
  await client.query("SET TimeZone = 'Asia/Kolkata'")
  await client.query(`INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, "timestamp", received_at, source, fingerprint, status)
    SELECT 'kolkata-' || g, 'c', 'm', 'p', now(), now() - g * interval '7 minutes', 'litellm', 'f', 'dead' FROM generate_series(1, 40) g`)
  const { kept, counted } = await hourlyAgainstEvents(client)
  t.same(kept, counted, 'the migration counted the recent hours, and the trigger the later ones, by UTC hour')
  // By hand: g = 0..143 are within 24 hours (g = 144 is 24 h ago, outside), and the 40 dead ones (at most 280 min ago).
  const byHand = { ...Object.fromEntries(['received', ...STATUSES].map((s) => [s, 0])), received: 184, pending: 115, forwarded: 29, dead: 40 }
  t.same(await countedLast24h(client, 'default'), byHand, 'the events agree with the hand count')
  // The stats' own statement, in that time zone: the hourly counts plus the partial hour.
  const { sql: text, parameters } = countByStatusQuery('default').compile(db)
  const statusRows = (await client.query<{ status: string, last_24h: number }>(text, [...parameters])).rows
  const fromStats: Record<string, number> = Object.fromEntries(['received', ...STATUSES].map((s) => [s, 0]))
  for (const r of statusRows) { fromStats[r.status] += r.last_24h; fromStats.received += r.last_24h }
  t.same(fromStats, byHand, 'the stats statement agrees with the hand count')
  t.equal((await migrator.migrateTo(before)).error, undefined, 'down (and the migrations after it)')
  const { rows: [{ table }] } = await client.query<{ table: string | null }>("SELECT to_regclass('usage_event_hourly_counts')::text AS table")
  t.equal(table, null, 'down drops the table')
  await client.query(`INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, "timestamp", source, fingerprint, status)
    VALUES ('after-down', 'c', 'm', 'p', now(), 'litellm', 'f', 'pending')`)
  t.pass('the counting triggers still write without the hourly table')
})

t.test('GET /webhooks/stats\' statement reads the months of its last 24 hours only, through the (organization_id, received_at) index', async (t) => {
  const app = await build(t, { FORWARDER_ENABLED: 'false' })
  const db = await sqlClient(t)
  // A year of months, as a deployment running for a year has them.
  const now = new Date()
  await ensureMonthlyPartitions(app.db, 'litellm_usage_events', now, 2, new Date(now.getTime() - 366 * 86_400_000))
  // 3,000 events, one a minute back from now (50 hours), analyzed: the partial hour is a narrow range of them.
  await db.query(`INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, "timestamp", received_at, source, fingerprint, status)
    SELECT 'spread-' || g, 'c-' || (g % 40), 'm', 'p', now(), now() - g * interval '1 minute', 'litellm', 'f', 'forwarded' FROM generate_series(1, 3000) g`)
  await db.query('ANALYZE litellm_usage_events')
  const { sql: text, parameters } = countByStatusQuery('default').compile(app.db)
  const plan = (await db.query(`EXPLAIN ${text}`, [...parameters])).rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n')
  const yesterday = new Date(now.getTime() - 86_400_000)
  const read = new Set([partitionName('litellm_usage_events', now), partitionName('litellm_usage_events', yesterday)])
  const months = [...plan.matchAll(/on (litellm_usage_events_y\d{4}m\d{2})/g)].map((m) => m[1])
  t.ok(months.length > 0, 'the partial hour reads a month')
  // An index scan or a bitmap scan of it (exact for an hour's rows), whichever the statistics favour.
  t.match(plan, /(Index Scan using|Bitmap Index Scan on) litellm_usage_events_y\d{4}m\d{2}_organization_id_received_at_idx/, 'through the (organization_id, received_at) B-tree')
  t.same(months.filter((m) => !read.has(m)), [], `no other month in the plan:\n${plan}`)
})
