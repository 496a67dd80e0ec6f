import t from 'tap'
import { build, seedEvent } from '../../../helpers/app.js'
import { scratchDatabase } from '../../../helpers/scratch-database.js'

// A new deployment's first minutes: the tables grow before PostgreSQL first analyzes them. Planned from those
// statistics, the write joined usage_event_keys to find the events already stored by hashing the whole key table,
// on every write: a batch of 500 events cost a little more with each event ever stored (a 10 s benchmark ran at
// 34,519 events/s, and at 49,303 once the lookup was an index probe per resend).
t.test('on tables never analyzed, a write looks stored events up by key, never by reading the whole key table', async (t) => {
  const scratch = await scratchDatabase(t, 'lai_insert_plan')
  const app = await build(t, { DATABASE_URL: scratch.url, FORWARDER_ENABLED: 'false', INGEST_RATE_LIMIT_MAX: '0' })
  const db = await scratch.client()
  // The statistics stay those of empty tables while the test runs: no autoanalyze.
  await db.query('ALTER TABLE usage_event_keys SET (autovacuum_enabled = false)')
  const { rows: months } = await db.query<{ name: string }>('SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = \'litellm_usage_events\'::regclass')
  for (const { name } of months) await db.query(`ALTER TABLE ${name} SET (autovacuum_enabled = false)`)

  // 30,000 events stored before, with their keys, as ingestion stores them.
  const stored = 30_000
  await db.query(`
    WITH stored AS (
      INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, total_tokens, cost_usd, "timestamp", source, fingerprint)
      SELECT 'before-' || g, 'cus-' || (g % 10), 'gpt-4o', 'openai', 250, 0.00375, now(), 'test', 'fp-' || g
        FROM generate_series(1, $1::int) g
      RETURNING organization_id, request_id, id, fingerprint)
    INSERT INTO usage_event_keys (organization_id, request_id, event_id, fingerprint) SELECT * FROM stored`, [stored])
  const { rows: [never] } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_user_tables WHERE relname = \'usage_event_keys\' AND last_analyze IS NULL AND last_autoanalyze IS NULL')
  t.equal(never.n, 1, 'the key table has never been analyzed')

  const keyTable = async (): Promise<{ seqScans: number, inserted: number }> => {
    await db.query('SELECT pg_stat_clear_snapshot()')
    const { rows: [r] } = await db.query<{ seq_scan: string, n_tup_ins: string }>('SELECT seq_scan, n_tup_ins FROM pg_stat_user_tables WHERE relname = \'usage_event_keys\'')
    return { seqScans: Number(r.seq_scan), inserted: Number(r.n_tup_ins) }
  }
  // The seed's own statistics arrive within a second or so.
  const deadline = Date.now() + 30_000
  while ((await keyTable()).inserted < stored && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  const before = await keyTable()

  // Four batches of 500: new events, and resends of stored ones (the same event, or another under a stored key).
  const batches = Array.from({ length: 4 }, (_, b) => Array.from({ length: 500 }, (_, i) => seedEvent({ request_id: `new-${b}-${i}` })))
  let expectedAccepted = 0
  for (const batch of batches) {
    const res = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', payload: batch })
    t.equal(res.statusCode, 202)
    t.equal(res.json().accepted, 500)
    expectedAccepted += 500
  }
  const resent = batches[0].slice(0, 20).map((e, i) => i < 10 ? e : { ...e, total_tokens: 999 })
  const again = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', payload: resent })
  t.equal(again.statusCode, 200)
  t.match(again.json(), { accepted: 0, duplicate: 10, conflict: 10, rejected: 0 }, 'the resends found by key: 10 identical, 10 changed')

  while ((await keyTable()).inserted < stored + expectedAccepted && Date.now() < deadline + 30_000) await new Promise((resolve) => setTimeout(resolve, 50))
  const after = await keyTable()
  t.equal(after.inserted - before.inserted, expectedAccepted, 'the writes\' statistics have arrived')
  t.equal(after.seqScans - before.seqScans, 0, 'no write read the whole key table')
})
