import t from 'tap'
import type pg from 'pg'
import type { Test as TapTest } from 'tap'
import { build, seedEvent, sqlClient } from '../helpers/app.js'
import { migrateToLatest } from '../../db/migrator.js'
import { scratchDatabase } from '../helpers/scratch-database.js'
import { purgeOrganization } from '../../plugins/app/organizations/repository.js'

// The usage events are partitioned by month on received_at (migration 2026_11_26_1800_usage_event_partitions);
// their dedupe key lives in usage_event_keys, and RETENTION_DAYS retires whole months of forwarded events.
const MIGRATION = '2026_11_26_1800_usage_event_partitions'

/** `litellm_usage_events_y2026m08`, computed here by hand rather than with db/partitions.ts. */
const monthTable = (at: Date): string => `litellm_usage_events_y${at.getUTCFullYear()}m${String(at.getUTCMonth() + 1).padStart(2, '0')}`
const monthsAgo = (now: Date, n: number): Date => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - n, 1))

/** usage_event_counts (kept by triggers and by retention) against a count of the table itself. */
async function countsAgree (t: TapTest, db: pg.Client | pg.Pool, what: string): Promise<void> {
  const kept = (await db.query(`SELECT organization_id, status, sum(events)::int AS n FROM usage_event_counts
    GROUP BY 1, 2 HAVING sum(events) <> 0 ORDER BY 1, 2`)).rows
  const actual = (await db.query(`SELECT organization_id, status, count(*)::int AS n FROM litellm_usage_events
    GROUP BY 1, 2 ORDER BY 1, 2`)).rows
  t.same(kept, actual, `usage_event_counts agrees with the table: ${what}`)
}

t.test(`${MIGRATION}: a populated events table is converted without losing a row, and back`, async (t) => {
  const { db, pool, migrator } = await scratchDatabase(t, 'lai_event_parts')
  const names = (await migrator.getMigrations()).map((m) => m.name)
  t.equal((await migrator.migrateTo(names[names.indexOf(MIGRATION) - 1])).error, undefined)
  // 600 events over the last 120 days (one every 4.8 h), in two organizations and every status.
  await pool.query('INSERT INTO organizations (id, name) VALUES (\'beta\', \'Beta\')')
  await pool.query(`INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, cost_usd, "timestamp",
                                                      source, fingerprint, status, received_at)
    SELECT CASE WHEN g % 3 = 0 THEN 'beta' ELSE 'default' END, 'req-' || g, 'cus-' || (g % 7), 'gpt-4o', 'openai', g * 0.000001,
           now() - g * interval '288 minutes', 'webhook', 'fp-' || g,
           (ARRAY['pending', 'failed', 'forwarded', 'dead', 'unmapped', 'not_billable', 'lago_error'])[g % 7 + 1],
           now() - g * interval '288 minutes'
      FROM generate_series(1, 600) g`)
  const rows = async (): Promise<unknown[]> => (await pool.query(`SELECT id, organization_id, request_id, status, cost_usd::text AS cost, received_at
    FROM litellm_usage_events ORDER BY id`)).rows
  const before = await rows()
  const countsBefore = (await pool.query('SELECT organization_id, status, sum(events)::int AS n FROM usage_event_counts GROUP BY 1, 2 ORDER BY 1, 2')).rows

  await migrateToLatest(db)
  t.same(await rows(), before, 'every row, with its id')
  const placed = (await pool.query('SELECT tableoid::regclass::text AS part, count(*)::int AS n FROM litellm_usage_events GROUP BY 1')).rows as Array<{ part: string, n: number }>
  t.ok(placed.length >= 4, `rows spread over month partitions: ${placed.map((p) => `${p.part}=${p.n}`).join(', ')}`)
  t.notOk(placed.some((p) => p.part === 'litellm_usage_events_default'), 'none in the default partition')
  t.same((await pool.query('SELECT organization_id, status, sum(events)::int AS n FROM usage_event_counts GROUP BY 1, 2 ORDER BY 1, 2')).rows, countsBefore, 'counts unchanged')
  await countsAgree(t, pool, 'after the conversion')
  const keys = (await pool.query('SELECT k.organization_id, k.request_id, k.event_id, k.fingerprint FROM usage_event_keys k ORDER BY k.event_id')).rows
  const expectedKeys = (await pool.query('SELECT organization_id, request_id, id AS event_id, fingerprint FROM litellm_usage_events ORDER BY id')).rows
  t.equal(keys.length, 600)
  t.same(keys, expectedKeys, 'one dedupe key per event, naming it')
  const { rows: [inserted] } = await pool.query(`INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, "timestamp", source, fingerprint)
    VALUES ('req-new', 'cus-1', 'gpt-4o', 'openai', now(), 'webhook', 'fp-new') RETURNING id, tableoid::regclass::text AS part`)
  t.equal(Number(inserted.id), 601, 'new ids continue after the copied ones')
  t.equal(inserted.part, monthTable(new Date()), 'a new event lands in the current month')
  await pool.query('DELETE FROM litellm_usage_events WHERE request_id = \'req-new\'')

  t.equal((await migrator.migrateTo(names[names.indexOf(MIGRATION) - 1])).error, undefined, 'down (and the migrations after it)')
  t.same(await rows(), before, 'down keeps every row, with its id')
  t.equal((await pool.query('SELECT to_regclass(\'usage_event_keys\') AS r')).rows[0].r, null, 'the key table is gone')
  await t.rejects(pool.query(`INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, "timestamp", source, fingerprint)
    VALUES ('req-1', 'cus-1', 'gpt-4o', 'openai', now(), 'webhook', 'fp-1')`), { code: '23505' }, 'the unique key is back on the table')
  await countsAgree(t, pool, 'after down')
})

t.test('a resend is recognised whatever month its event was stored in', async (t) => {
  const app = await build(t, { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' })
  const db = await sqlClient(t)
  const event = seedEvent()
  const first = await app.inject({ method: 'POST', url: '/webhooks/litellm', payload: event })
  t.equal(first.statusCode, 202)
  const old = monthsAgo(new Date(), 5)
  await db.query(`CREATE TABLE IF NOT EXISTS ${monthTable(old)} PARTITION OF litellm_usage_events
                    FOR VALUES FROM ('${old.toISOString()}') TO ('${monthsAgo(new Date(), 4).toISOString()}')`)
  // Moved to a month five months back, as if it had been received then.
  await db.query('UPDATE litellm_usage_events SET received_at = $1 WHERE request_id = $2', [new Date(old.getTime() + 86_400_000), event.request_id])
  t.equal((await db.query('SELECT tableoid::regclass::text AS part FROM litellm_usage_events WHERE request_id = $1', [event.request_id])).rows[0].part, monthTable(old))

  const again = await app.inject({ method: 'POST', url: '/webhooks/litellm', payload: event })
  t.equal(again.statusCode, 200)
  t.same(again.json(), { status: 'duplicate', request_id: event.request_id, id: first.json().id })
  const changed = await app.inject({ method: 'POST', url: '/webhooks/litellm', payload: { ...event, cost_usd: 1.5 } })
  t.equal(changed.statusCode, 409, 'the same request_id with other billing content is a conflict')
  const batch = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', payload: [event, seedEvent()] })
  t.match(batch.json().results, [{ status: 'duplicate', id: first.json().id }, { status: 'accepted' }])
  t.equal((await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE request_id = $1', [event.request_id])).rows[0].n, 1, 'stored once')
})

t.test('RETENTION_DAYS retires whole months: forwarded and not billable events go, the others stay; keys stay', async (t) => {
  const db = await sqlClient(t)
  const now = new Date()
  const oldest = monthsAgo(now, 4)
  const older = monthsAgo(now, 3)
  for (const month of [oldest, older]) {
    const end = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1))
    await db.query(`CREATE TABLE IF NOT EXISTS ${monthTable(month)} PARTITION OF litellm_usage_events
                      FOR VALUES FROM ('${month.toISOString()}') TO ('${end.toISOString()}')`)
  }
  // Stored through the service with retention off, then placed in old months with the statuses they reached.
  const setup = await build(t, { RETENTION_DAYS: '0', FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' })
  const placed: Array<{ event: Record<string, unknown>, month: Date | null, status: string }> = [
    { event: seedEvent(), month: oldest, status: 'forwarded' },
    { event: seedEvent(), month: oldest, status: 'not_billable' },
    { event: seedEvent(), month: oldest, status: 'pending' },
    { event: seedEvent(), month: oldest, status: 'dead' },
    { event: seedEvent(), month: oldest, status: 'failed' },
    { event: seedEvent(), month: older, status: 'forwarded' },
    { event: seedEvent(), month: older, status: 'unmapped' },
    { event: seedEvent(), month: null, status: 'forwarded' }
  ]
  const ids: number[] = []
  for (const p of placed) {
    const res = await setup.inject({ method: 'POST', url: '/webhooks/litellm', payload: p.event })
    t.equal(res.statusCode, 202)
    ids.push(res.json().id)
    await db.query(`UPDATE litellm_usage_events SET status = $1, received_at = coalesce($2::timestamptz + interval '2 days', received_at)
                     WHERE id = $3`, [p.status, p.month, res.json().id])
  }
  const retainNothing = await setup.retention.run(now)
  t.same([retainNothing.retired, retainNothing.dropped, retainNothing.leftovers], [[], [], 0], 'RETENTION_DAYS=0 removes nothing')
  await setup.close()
  await countsAgree(t, db, 'before retention')

  // A run that stopped after detaching the older month (its events are out of the table until it is finished).
  await db.query(`ALTER TABLE litellm_usage_events DETACH PARTITION ${monthTable(older)}`)

  // 45 days: both months ended before the cutoff (they ended at least two months ago), the current one did not.
  const app = await build(t, { RETENTION_DAYS: '45', FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' })
  await app.retention.run(now) // the run at start may have done it already: the table tells
  const left = new Map((await db.query('SELECT id, status, tableoid::regclass::text AS part FROM litellm_usage_events')).rows
    .map((r) => [Number(r.id), r as { status: string, part: string }]))
  const expectGone = placed.map((p, i) => p.month !== null && ['forwarded', 'not_billable'].includes(p.status) ? ids[i] : undefined).filter((id) => id !== undefined)
  t.same(ids.filter((id) => !left.has(id)), expectGone, 'the forwarded and not billable events of the old months are removed')
  for (const [i, p] of placed.entries()) {
    if (expectGone.includes(ids[i])) continue
    t.equal(left.get(ids[i])?.status, p.status, `a ${p.status} event ${p.month === null ? 'of this month' : 'of an old month'} is kept as it was`)
    if (p.month !== null) t.equal(left.get(ids[i])?.part, 'litellm_usage_events_default', 'in the default partition now')
  }
  const tables = (await db.query('SELECT relname FROM pg_class WHERE relname IN ($1, $2)', [monthTable(oldest), monthTable(older)])).rows
  t.same(tables, [], 'both old months are dropped, the detached one too')
  await countsAgree(t, db, 'after retiring two months')

  // The keys outlive their events: a resend of a removed event is still a resend, never billed twice.
  const resent = await app.inject({ method: 'POST', url: '/webhooks/litellm', payload: placed[0].event })
  t.equal(resent.statusCode, 200)
  t.same(resent.json(), { status: 'duplicate', request_id: placed[0].event.request_id, id: ids[0] })

  // A kept event once sent is removed by the next run, row by row (the default partition holds few).
  await db.query('UPDATE litellm_usage_events SET status = \'forwarded\' WHERE id = $1', [ids[2]])
  const next = await app.retention.run(now)
  t.equal(next.leftovers, 1)
  t.equal((await db.query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE id = $1', [ids[2]])).rows[0].n, 0)
  await countsAgree(t, db, 'after the leftovers')
})

t.test('a month detached when an organization was purged: its events are neither put back nor counted', async (t) => {
  // A database of its own: no other test's old events in its default partition.
  const scratch = await scratchDatabase(t, 'lai_retire_purged')
  const env = { DATABASE_URL: scratch.url, FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' }
  const setup = await build(t, { ...env, RETENTION_DAYS: '0' }) // migrated
  const db = await scratch.client()
  const now = new Date()
  const month = monthsAgo(now, 5)
  const end = new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1))
  await db.query(`CREATE TABLE ${monthTable(month)} PARTITION OF litellm_usage_events
                    FOR VALUES FROM ('${month.toISOString()}') TO ('${end.toISOString()}')`)
  const id = 'purged'
  await db.query('INSERT INTO organizations (id, name, status) VALUES ($1, \'Purged Ltd\', \'disabled\')', [id])
  // Two pending events in that month: one of default, one of the organization (moved to it, key and all).
  const stored: number[] = []
  for (let i = 0; i < 2; i++) {
    const res = await setup.inject({ method: 'POST', url: '/webhooks/litellm', payload: seedEvent() })
    t.equal(res.statusCode, 202)
    stored.push(res.json().id)
    await db.query('UPDATE litellm_usage_events SET received_at = $1::timestamptz + interval \'2 days\' WHERE id = $2', [month, res.json().id])
  }
  const [kept, purged] = stored
  await db.query('UPDATE litellm_usage_events SET organization_id = $1 WHERE id = $2', [id, purged])
  await db.query('UPDATE usage_event_keys SET organization_id = $1 WHERE event_id = $2', [id, purged])
  await setup.close()
  await countsAgree(t, db, 'before')

  // A run stopped after detaching the month; the organization is purged meanwhile (the purge cannot see the month).
  await db.query(`ALTER TABLE litellm_usage_events DETACH PARTITION ${monthTable(month)}`)
  const app = await build(t, { ...env, RETENTION_DAYS: '0' })
  t.match(await purgeOrganization(app.db, id), { deleted: { litellm_usage_events: 0, usage_event_keys: 1 } }, 'purged: its event out of its sight, its key deleted')
  await app.close()

  const retiring = await build(t, { ...env, RETENTION_DAYS: '45' })
  await retiring.retention.run(now) // the run at start may have done it already: the table tells
  t.same((await db.query('SELECT id::int, organization_id FROM litellm_usage_events WHERE id = ANY($1)', [stored])).rows,
    [{ id: kept, organization_id: 'default' }], 'default\'s pending event is put back, the purged organization\'s is not')
  t.same((await db.query('SELECT 1 FROM usage_event_counts WHERE organization_id = $1', [id])).rows, [], 'no counts for the purged organization')
  t.same((await db.query('SELECT 1 FROM pg_class WHERE relname = $1', [monthTable(month)])).rows, [], 'the month is dropped')
  await countsAgree(t, db, 'after retiring the month')
})
