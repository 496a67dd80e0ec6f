import t, { type Test } from 'tap'
import { build, seedEvent } from '../../../helpers/app.js'
import { scratchDatabase } from '../../../helpers/scratch-database.js'
import { bearer, INGEST_TOKEN, postGeneric } from '../../../helpers/litellm.js'
import { simulateCall, standardLoggingPayload } from '../../../../scripts/litellm-simulator/index.js'

interface TableStatistics { seqScans: number, inserted: number, byTable: Record<string, { seqScans: number, idxScans: number }> }

/**
 * A new deployment's first minutes: its tables grow before PostgreSQL first analyzes them. A scratch database with
 * 30,000 events (with their keys and LiteLLM call ids) stored as ingestion stores them, autovacuum off so that
 * nothing analyzes them while the test runs; and a reader of the sequential scans and inserts PostgreSQL has
 * counted on a table (`usage_event_keys`, or every month of the events), once its counts include `inserted` rows.
 */
async function neverAnalyzed (t: Test, stored: number) {
  const scratch = await scratchDatabase(t, 'lai_insert_plan')
  // One connection: every write's counts are reported by one backend, all of them at once (see `statistics`).
  const app = await build(t, { DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '1', FORWARDER_ENABLED: 'false', INGEST_RATE_LIMIT_MAX: '0', WEBHOOK_TOKENS: INGEST_TOKEN })
  const db = await scratch.client()
  await db.query('ALTER TABLE usage_event_keys SET (autovacuum_enabled = false)')
  const { rows: months } = await db.query<{ name: string }>('SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = \'litellm_usage_events\'::regclass')
  for (const { name } of months) await db.query(`ALTER TABLE ${name} SET (autovacuum_enabled = false)`)
  await db.query(`
    WITH stored AS (
      INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, total_tokens, cost_usd, "timestamp", source, fingerprint, litellm_id)
      SELECT 'before-' || g, 'cus-' || (g % 10), 'gpt-4o', 'openai', 250, 0.00375, now(), 'test', 'fp-' || g, 'chatcmpl-before-' || g
        FROM generate_series(1, $1::int) g
      RETURNING organization_id, request_id, id, fingerprint)
    INSERT INTO usage_event_keys (organization_id, request_id, event_id, fingerprint) SELECT * FROM stored`, [stored])
  const { rows: [never] } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_user_tables
    WHERE (relname = 'usage_event_keys' OR relname LIKE 'litellm\\_usage\\_events\\_%') AND (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL)`)
  t.equal(never.n, 0, 'no table has been analyzed')

  const read = async (table: 'usage_event_keys' | 'months'): Promise<TableStatistics> => {
    await db.query('SELECT pg_stat_clear_snapshot()')
    const { rows } = await db.query<{ relname: string, seq_scan: string, idx_scan: string | null, n_tup_ins: string }>(`SELECT relname, seq_scan, idx_scan, n_tup_ins FROM pg_stat_user_tables
      WHERE ${table === 'months' ? 'relname LIKE \'litellm\\_usage\\_events\\_%\'' : 'relname = \'usage_event_keys\''}`)
    // Per table too: a failure seen once in a while says which table was read whole.
    const byTable = Object.fromEntries(rows.map((r) => [r.relname, { seqScans: Number(r.seq_scan), idxScans: Number(r.idx_scan ?? 0) }]))
    return { seqScans: rows.reduce((n, r) => n + Number(r.seq_scan), 0), inserted: rows.reduce((n, r) => n + Number(r.n_tup_ins), 0), byTable }
  }
  // PostgreSQL reports a backend's counts within a few seconds of its transaction, every table's at once. A write
  // that stores nothing (a resend) is seen only through a later one that stores something: `closingWrite`.
  const statistics = async (table: 'usage_event_keys' | 'months', inserted: number): Promise<TableStatistics> => {
    const deadline = Date.now() + 30_000
    let now = await read(table)
    while (now.inserted < inserted && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      now = await read(table)
    }
    t.equal(now.inserted, inserted, `the counts of ${table} include the ${inserted} rows stored`)
    return now
  }
  /** One new event, stored after the writes under test by the same connection, so that its count carries theirs. */
  const closingWrite = async (): Promise<void> => {
    const res = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: bearer, payload: seedEvent({ request_id: `closing-${Date.now()}` }) })
    t.equal(res.statusCode, 202)
  }
  return { app, statistics, closingWrite }
}

// Planned from those statistics, the write joined usage_event_keys to find the events already stored by hashing the
// whole key table, on every write: a batch of 500 events cost a little more with each event ever stored (a 10 s
// benchmark ran at 34,519 events/s, and at 49,303 once the lookup was an index probe per resend).
t.test('on tables never analyzed, a write looks stored events up by key, never by reading the whole key table', async (t) => {
  const stored = 30_000
  const { app, statistics, closingWrite } = await neverAnalyzed(t, stored)
  const before = await statistics('usage_event_keys', stored)

  // Four batches of 500: new events, and resends of stored ones (the same event, or another under a stored key).
  const batches = Array.from({ length: 4 }, (_, b) => Array.from({ length: 500 }, (_, i) => seedEvent({ request_id: `new-${b}-${i}` })))
  let expectedAccepted = 0
  for (const batch of batches) {
    const res = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: bearer, payload: batch })
    t.equal(res.statusCode, 202)
    t.equal(res.json().accepted, 500)
    expectedAccepted += 500
  }
  const resent = batches[0].slice(0, 20).map((e, i) => i < 10 ? e : { ...e, total_tokens: 999 })
  const again = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: bearer, payload: resent })
  t.equal(again.statusCode, 200)
  t.match(again.json(), { accepted: 0, duplicate: 10, conflict: 10, rejected: 0 }, 'the resends found by key: 10 identical, 10 changed')

  await closingWrite()
  const after = await statistics('usage_event_keys', stored + expectedAccepted + 1)
  t.equal(after.seqScans - before.seqScans, 0, 'no write read the whole key table, the resend included', { before: before.byTable, after: after.byTable })
})

// LiteLLM's generic_api batches carry call ids: a write first looks up the events already stored with them. As
// `litellm_id = ANY(...)`, on a month not yet analyzed PostgreSQL scanned the whole month for every batch (and
// compiled the scan with JIT): generic_api batches of 512 ran at 8,746 calls/s, 11,173 with one index probe per id.
t.test('on tables never analyzed, a write looks LiteLLM call ids up by index, never by reading the whole month', async (t) => {
  const stored = 30_000
  const { app, statistics, closingWrite } = await neverAnalyzed(t, stored)
  const before = await statistics('months', stored)
  const batches = Array.from({ length: 3 }, () => Array.from({ length: 512 }, (_, i) => standardLoggingPayload(simulateCall({ team: 'plan', endUser: `plan-user-${i % 5}` }))))
  for (const batch of batches) {
    const res = await postGeneric(app, batch)
    t.equal(res.statusCode, 202)
    t.match(res.json(), { accepted: 512, duplicate: 0 })
  }
  const again = await postGeneric(app, batches[0])
  t.match(again.json(), { accepted: 0, duplicate: 512 }, 'a batch sent again: every call found stored')
  await closingWrite()
  const after = await statistics('months', stored + 3 * 512 + 1)
  t.equal(after.seqScans - before.seqScans, 0, 'no write read a whole month, the resend included', { before: before.byTable, after: after.byTable })
})
