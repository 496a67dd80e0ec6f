import t from 'tap'
import pg from 'pg'
import { build, seedEvent, sqlClient } from '../helpers/app.js'
import { migrateToLatest } from '../../db/migrator.js'
import { scratchDatabase } from '../helpers/scratch-database.js'

const COUNTS = 'usage_event_counts_2026_11_26_1600'
const MIGRATION = '2026_11_26_1600_usage_event_counts'

/** What the counts table says per source/status, and what counting the events table says: they must agree. */
async function both (db: pg.Client): Promise<{ kept: Record<string, number>, counted: Record<string, number> }> {
  const kept = await db.query<{ k: string, n: number }>(`SELECT source || '/' || status AS k, sum(events)::int AS n FROM usage_event_counts
     GROUP BY 1 HAVING sum(events) <> 0`)
  const counted = await db.query<{ k: string, n: number }>('SELECT source || \'/\' || status AS k, count(*)::int AS n FROM litellm_usage_events GROUP BY 1')
  const asMap = (rows: Array<{ k: string, n: number }>): Record<string, number> => Object.fromEntries(rows.map((r) => [r.k, r.n]).sort())
  return { kept: asMap(kept.rows), counted: asMap(counted.rows) }
}

t.test(`${COUNTS}: inserts (concurrent, duplicates), status changes and deletes keep the counts exact`, async (t) => {
  const app = await build(t, { API_KEYS: 'counts-key' })
  const db = await sqlClient(t)
  const post = (url: string, body: unknown) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })
  // 20 batches at once (group commit writes them together or not), each resent once: duplicates count once.
  const batches = Array.from({ length: 20 }, () => Array.from({ length: 25 }, () => seedEvent()))
  const answers = await Promise.all([...batches, ...batches].map((b) => post('/webhooks/litellm/batch', b)))
  t.ok(answers.every((a) => a.statusCode === 202 || a.statusCode === 200), 'every batch answered')
  let { kept, counted } = await both(db)
  t.same(kept, counted, 'after concurrent inserts')
  t.equal(Object.values(kept).reduce((a, b) => a + b, 0), 500, '500 distinct events, resends not counted')

  await db.query('UPDATE litellm_usage_events SET status = \'forwarded\' WHERE id % 3 = 0')
  await db.query('UPDATE litellm_usage_events SET status = \'dead\' WHERE id % 7 = 0')
  await db.query('UPDATE litellm_usage_events SET attempts = attempts + 1') // no status change: counts unmoved
  await db.query('DELETE FROM litellm_usage_events WHERE id % 11 = 0')
  ;({ kept, counted } = await both(db))
  t.same(kept, counted, 'after updates and deletes')
  const ofStatus = (status: string): number => Object.entries(counted).filter(([k]) => k.endsWith(`/${status}`)).reduce((a, [, n]) => a + n, 0)
  t.ok(ofStatus('forwarded') > 0 && ofStatus('dead') > 0 && ofStatus('pending') > 0, 'several statuses present')

  const stats = (await app.inject({ url: '/webhooks/stats', headers: { authorization: 'Bearer counts-key' } })).json()
  t.equal(stats.totals.received, Object.values(counted).reduce((a, b) => a + b, 0), 'GET /webhooks/stats totals from the counts')
  t.equal(stats.totals.forwarded, ofStatus('forwarded'))
  t.equal(stats.totals.dead, ofStatus('dead'))

  // The stats query reads the counts table and the received_at index: never a sequential scan of the events.
  await db.query('ANALYZE litellm_usage_events')
  await db.query('SET enable_seqscan = off')
  const plan = (await db.query(`EXPLAIN SELECT source, status, count(*) FROM litellm_usage_events
     WHERE received_at > now() - interval '24 hours' AND organization_id = 'default' GROUP BY source, status`)).rows.map((r) => r['QUERY PLAN']).join('\n')
  await db.query('RESET enable_seqscan')
  // Which index, on a table of realistic spread: test/db/usage-event-hourly-counts.test.ts.
  t.notMatch(plan, /Seq Scan/, 'an organization\'s last 24 h from an index')
})

t.test(`${COUNTS}: the migration counts a populated table`, async (t) => {
  const { db, pool, migrator, client: newClient } = await scratchDatabase(t, 'lai_counts')
  const names = (await migrator.getMigrations()).map((m) => m.name)
  const before = names[names.indexOf(MIGRATION) - 1]
  t.ok(before !== undefined, 'a migration precedes it')
  const to = await migrator.migrateTo(before)
  t.equal(to.error, undefined)
  await pool.query(`INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, "timestamp", source, fingerprint, status)
    SELECT 'populated-' || g, 'c', 'm', 'p', now(), CASE WHEN g % 2 = 0 THEN 'litellm' ELSE 'generic_api' END, 'f',
           CASE WHEN g % 5 = 0 THEN 'forwarded' ELSE 'pending' END
      FROM generate_series(1, 1000) g`)
  await migrateToLatest(db)
  const client = await newClient()
  const { kept, counted } = await both(client)
  t.same(kept, counted)
  t.same(counted, { 'generic_api/forwarded': 100, 'generic_api/pending': 400, 'litellm/forwarded': 100, 'litellm/pending': 400 }, 'hand-counted')
})

t.test('usage_event_counts per organization (2026_11_26_1700): the migration recounts per organization; moves between organizations are counted', async (t) => {
  const { db, pool, migrator, client: newClient } = await scratchDatabase(t, 'lai_counts_org')
  const names = (await migrator.getMigrations()).map((m) => m.name)
  const before = names[names.indexOf('2026_11_26_1700_dashboard_per_organization') - 1]
  t.ok(before !== undefined, 'a migration precedes it')
  t.equal((await migrator.migrateTo(before)).error, undefined)
  await pool.query("INSERT INTO organizations (id, name) VALUES ('org-b', 'B')")
  await pool.query(`INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, "timestamp", source, fingerprint, status)
    SELECT CASE WHEN g % 4 = 0 THEN 'org-b' ELSE 'default' END, 'org-' || g, 'c', 'm', 'p', now(), 'webhook', 'f',
           CASE WHEN g % 3 = 0 THEN 'dead' ELSE 'pending' END
      FROM generate_series(1, 120) g`)
  await migrateToLatest(db)
  const client = await newClient()
  const perOrganization = async (): Promise<Record<string, number>> => Object.fromEntries((await client.query<{ k: string, n: number }>(
    'SELECT organization_id || \'/\' || status AS k, sum(events)::int AS n FROM usage_event_counts GROUP BY 1 HAVING sum(events) <> 0 ORDER BY 1')).rows.map((r) => [r.k, r.n]))
  // By hand over g = 1..120: org-b has the multiples of 4 (30), of which multiples of 12 are dead (10); default has
  // the other 90, of which multiples of 3 but not of 4 are dead (40 - 10 = 30).
  t.same(await perOrganization(), { 'default/dead': 30, 'default/pending': 60, 'org-b/dead': 10, 'org-b/pending': 20 }, 'recounted per organization')
  // Routing by LiteLLM identity moves events to another organization: the counts follow.
  await client.query("UPDATE litellm_usage_events SET organization_id = 'org-b' WHERE organization_id = 'default' AND status = 'dead' AND request_id IN ('org-3', 'org-6', 'org-9')")
  t.same(await perOrganization(), { 'default/dead': 27, 'default/pending': 60, 'org-b/dead': 13, 'org-b/pending': 20 }, 'three dead events moved to org-b')
  t.same((await both(client)).kept, (await both(client)).counted, 'and the per-source totals still agree')
})
