import t from 'tap'
import type { Kysely } from 'kysely'
import type { Database } from '../../../../db/database.js'
import { scratchDatabase } from '../../../helpers/scratch-database.js'
import { claimDueEvents, dueEvents, markForwarded } from '../../../../plugins/app/forwarder/repository.js'
import { PIN_INDEX_PLAN } from '../../../../db/plans.js'

// A new deployment whose first burst (or an hour of Lago being down) is stored before PostgreSQL first analyzes the
// table: the statistics the migrations left say the queue is empty. Planned from them, the claim sorted the whole
// backlog on every call (a bitmap scan, then a sort) instead of walking the index of unsent events and stopping
// after its batch: a 1,000,000-event backlog drained at about 400 events/s. (Below 200,000 rows here, PostgreSQL
// 15 still chose the index: the test stores 200,000.)
t.test('a backlog stored before the first ANALYZE: the claim walks the index of unsent events in id order, sorting nothing', async (t) => {
  const scratch = await scratchDatabase(t, 'lai_claim_plan')
  const { error } = await scratch.migrator.migrateToLatest()
  if (error !== undefined) throw error
  const db = await scratch.client()
  // The statistics stay those the migrations left: no autovacuum (and so no autoanalyze) of any month while the test
  // runs (the setting is the partitions' own).
  const { rows: months } = await db.query<{ name: string }>('SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = \'litellm_usage_events\'::regclass')
  for (const { name } of months) await db.query(`ALTER TABLE ${name} SET (autovacuum_enabled = false)`)
  await db.query(`
    INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, "timestamp", source, fingerprint)
    SELECT 'default', 'burst-' || g, 'cus-' || (g % 10), 'gpt-4o', 'openai', now(), 'test', md5(g::text) FROM generate_series(1, 30000) g`)

  const kysely = scratch.db as unknown as Kysely<Database>
  const due = dueEvents('default', 100).compile(kysely)
  const pin = PIN_INDEX_PLAN.compile(kysely)
  const plan = async (pinned: boolean): Promise<string> => {
    await db.query('BEGIN')
    try {
      if (pinned) await db.query(pin.sql, [...pin.parameters])
      const { rows } = await db.query(`EXPLAIN (FORMAT JSON) ${due.sql}`, [...due.parameters])
      return JSON.stringify(rows[0]['QUERY PLAN'])
    } finally {
      await db.query('ROLLBACK')
    }
  }
  // (Unpartitioned, PostgreSQL 15 planned a sort of the backlog from these statistics; on the month partitions it
  // happens to walk the index, and the pin keeps it so.)
  const pinned = await plan(true)
  t.match(pinned, /"Node Type":"Index Scan"[^}]*"Index Name":"litellm_usage_events_y\d{4}m\d{2}_organization_id_id_idx"/, 'the claim walks the per-organization index of unsent events of each month')
  t.notMatch(pinned, /"Node Type":"Sort"/, 'no sort of the backlog')
  t.notMatch(pinned, /Bitmap|Seq Scan/, 'no bitmap or sequential scan')

  // And the claim itself: the 100 oldest, in id order, read from the index entry by entry (a bitmap scan reads
  // every entry of the backlog). PostgreSQL reports index statistics after the transaction, within a second or so.
  const entriesRead = async (indexes = '%_organization_id_id_idx'): Promise<number> => {
    await db.query('SELECT pg_stat_clear_snapshot()')
    const { rows } = await db.query<{ n: string }>('SELECT coalesce(sum(idx_tup_read), 0) AS n FROM pg_stat_user_indexes WHERE relname LIKE \'litellm_usage_events_%\' AND indexrelname LIKE $1', [indexes])
    return Number(rows[0].n)
  }
  const before = await entriesRead()
  // (Every event is default's. Read in primary-key order: a few hundred entries at most, counted in what follows.)
  const { rows: oldest } = await db.query<{ id: number }>('SELECT id::int FROM litellm_usage_events ORDER BY id LIMIT 100')
  const claimed = await claimDueEvents(kysely, { organization: 'default', worker: 'test', limit: 100, leaseMs: 60_000, metricCode: 'ai_usage' })
  t.same(claimed.map((c) => Number(c.id)), oldest.map((r) => r.id), 'the 100 oldest events, in order')
  const deadline = Date.now() + 30_000
  while (await entriesRead() === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const read = await entriesRead() - before
  t.ok(read > 0 && read <= 1000, `the claim read ${read} index entries of the 30,000 (a sort of the backlog reads them all)`)

  // Settling them looks each one up by primary key in its month: on these statistics, unpinned, PostgreSQL hashed
  // every unsent event of the month instead (a bitmap scan of the index of unsent events: 200,000 entries). The
  // count may include the reads above whose statistics arrive late (a few hundred).
  const allBefore = await entriesRead('%')
  t.equal(await markForwarded(kysely, claimed), 100)
  const settleDeadline = Date.now() + 30_000
  while (await entriesRead('%') === allBefore && Date.now() < settleDeadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const settleRead = await entriesRead('%') - allBefore
  t.ok(settleRead > 0 && settleRead <= 1000, `settling 100 events read ${settleRead} index entries of the 30,000 (none: a sequential scan of the month)`)
})
