import t from 'tap'
import { build, sqlClient } from '../helpers/app.js'
import { migrateToLatest } from '../../db/migrator.js'
import { scratchDatabase } from '../helpers/scratch-database.js'
import { monthsBetween, partitionName } from '../../db/partitions.js'

const MIGRATION = '2026_11_26_1610_delivery_log_partitions'

t.test('month arithmetic: names and ranges in UTC, across a year end', async (t) => {
  t.same(monthsBetween(new Date('2026-11-30T23:59:59Z'), new Date('2027-02-01T00:00:00Z')).map((m) => partitionName('x', m)),
    ['x_y2026m11', 'x_y2026m12', 'x_y2027m01', 'x_y2027m02'])
})

t.test(`${MIGRATION}: a populated delivery log is converted without losing a row`, async (t) => {
  const { db, pool, migrator } = await scratchDatabase(t, 'lai_parts')
  const names = (await migrator.getMigrations()).map((m) => m.name)
  t.equal((await migrator.migrateTo(names[names.indexOf(MIGRATION) - 1])).error, undefined)
  // 900 attempts over the last 90 days (one every 2.4 h), so three or four months hold rows.
  await pool.query(`INSERT INTO webhook_delivery_logs (event_type, endpoint, request_count, http_status, duration_ms, created_at)
    SELECT 'events.batch', '/api/v1/events/batch', g % 100 + 1, 200, g % 50, now() - (g * interval '144 minutes') FROM generate_series(1, 900) g`)
  const before = (await pool.query('SELECT id, request_count, duration_ms, created_at FROM webhook_delivery_logs ORDER BY id')).rows
  await migrateToLatest(db)
  const after = (await pool.query('SELECT id, request_count, duration_ms, created_at FROM webhook_delivery_logs ORDER BY id')).rows
  t.same(after, before, 'every row, with its id')
  const placed = (await pool.query('SELECT tableoid::regclass::text AS part, count(*)::int AS n FROM webhook_delivery_logs GROUP BY 1')).rows as Array<{ part: string, n: number }>
  t.ok(placed.length >= 3, `rows spread over month partitions: ${placed.map((p) => `${p.part}=${p.n}`).join(', ')}`)
  t.notOk(placed.some((p) => p.part === 'webhook_delivery_logs_default'), 'none in the default partition')
  const { rows: [inserted] } = await pool.query(`INSERT INTO webhook_delivery_logs (event_type, endpoint, request_count, duration_ms)
    VALUES ('events.batch', '/x', 1, 1) RETURNING id`)
  t.ok(Number(inserted.id) > Math.max(...before.map((r) => Number(r.id))), 'new ids continue after the copied ones')
})

t.test('RETENTION_DAYS drops the months wholly older than it, keeps the rest; 0 keeps everything', async (t) => {
  const db = await sqlClient(t)
  const keep = await build(t, { RETENTION_DAYS: '0', FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' })
  // Four months back and the current one, one attempt each.
  for (let m = 0; m <= 4; m++) {
    const { rows: [{ s }] } = await db.query('SELECT date_trunc(\'month\', now() AT TIME ZONE \'UTC\' - $1 * interval \'1 month\') AT TIME ZONE \'UTC\' AS s', [m])
    const month = new Date(s)
    const part = partitionName('webhook_delivery_logs', month)
    await db.query(`CREATE TABLE IF NOT EXISTS ${part} PARTITION OF webhook_delivery_logs FOR VALUES FROM ('${month.toISOString()}') TO ('${new Date(Date.UTC(month.getUTCFullYear(), month.getUTCMonth() + 1, 1)).toISOString()}')`)
    await db.query(`INSERT INTO webhook_delivery_logs (event_type, endpoint, request_count, duration_ms, created_at)
      VALUES ('events.batch', '/x', 1, 1, $1::timestamptz + interval '1 day')`, [month])
  }
  const count = async (): Promise<number> => (await db.query('SELECT count(*)::int AS n FROM webhook_delivery_logs')).rows[0].n
  t.equal(await count(), 5)
  const kept = await keep.retention.run()
  t.same(kept.dropped, [], 'RETENTION_DAYS=0 drops nothing')
  t.ok(kept.created.length <= 2, 'the months ahead exist (created at start or now)')
  await keep.close()

  const retain = await build(t, { RETENTION_DAYS: '45', FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' })
  const now = new Date()
  await retain.retention.run(now) // the run at start may have dropped them already: the partitions left tell
  const left = (await db.query(`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'webhook_delivery_logs'::regclass`)).rows.map((r) => r.name as string)
  // A month is dropped when it ended 45 days ago or earlier: computed here by hand from the month starts.
  const cutoff = now.getTime() - 45 * 86_400_000
  const expected: string[] = []
  for (let m = 1; m <= 4; m++) {
    const start = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - m, 1))
    const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - m + 1, 1))
    if (end.getTime() <= cutoff) expected.push(partitionName('webhook_delivery_logs', start))
  }
  t.ok(expected.length >= 1, `at least one month is past the cutoff: ${expected.join(', ')}`)
  t.same(left.filter((n) => expected.includes(n)), [], `dropped ${expected.join(', ')}`)
  t.ok(left.includes(partitionName('webhook_delivery_logs', now)), 'the current month kept')
  t.equal(await count(), 5 - expected.length, 'the rows of the dropped months are gone, the others kept')
  const { rows: [{ oldest }] } = await db.query('SELECT min(created_at) AS oldest FROM webhook_delivery_logs')
  t.ok(new Date(oldest).getTime() > cutoff - 31 * 86_400_000, 'nothing older than a month before the cutoff is left')
})
