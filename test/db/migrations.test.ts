import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import { POSTGRES_URL, runTypeScript } from '../helpers/app.js'
import { createMigrator, ensureDatabase, migrateToLatest } from '../../db/migrator.js'

const root = path.join(import.meta.dirname, '..', '..')

/** A database of its own for this test, dropped afterwards. */
async function scratchDatabase (t: { teardown: (fn: () => unknown) => void }): Promise<string> {
  const name = `lai_migrate_${randomBytes(4).toString('hex')}`
  t.teardown(async () => {
    const admin = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  })
  return `${POSTGRES_URL}/${name}`
}

function kysely (url: string): Kysely<unknown> {
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  pool.on('error', () => {}) // the scratch database is dropped WITH (FORCE) at teardown
  return new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) })
}

/** A scratch database, created, and Kysely on it (destroyed at teardown, before the database is dropped). */
async function scratchKysely (t: { teardown: (fn: () => unknown) => void }): Promise<{ url: string, db: Kysely<unknown> }> {
  const url = await scratchDatabase(t)
  await ensureDatabase(url)
  const db = kysely(url)
  t.teardown(() => db.destroy())
  return { url, db }
}

t.test('three replicas starting together: the database is created once and each migration applied once', async (t) => {
  const url = await scratchDatabase(t)
  const created = await Promise.all([ensureDatabase(url), ensureDatabase(url), ensureDatabase(url)])
  t.ok(created.filter(Boolean).length >= 1, 'created by one of them')
  const replicas = [kysely(url), kysely(url), kysely(url)]
  t.teardown(() => Promise.all(replicas.map((db) => db.destroy())))
  const results = await Promise.all(replicas.map((db) => migrateToLatest(db)))
  const applied = results.flatMap((r) => r.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
  const all = (await createMigrator(replicas[0]).getMigrations()).map((m) => m.name)
  t.same(applied.sort(), [...all].sort(), 'every migration applied exactly once across the replicas')
  t.ok(all.length >= 1)
})

t.test('down reverts cleanly and up re-applies', async (t) => {
  const { url, db } = await scratchKysely(t)
  await migrateToLatest(db)
  const migrator = createMigrator(db)
  const migrations = await migrator.getMigrations()
  for (let i = 0; i < migrations.length; i++) {
    const { error } = await migrator.migrateDown()
    t.equal(error, undefined)
  }
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  await client.connect()
  t.teardown(() => client.end())
  const tables = await client.query('SELECT table_name FROM information_schema.tables WHERE table_schema = \'public\' AND table_name NOT LIKE \'kysely_%\'')
  t.same(tables.rows, [], 'nothing left after reverting everything')
  await migrateToLatest(db)
  const fn = await client.query('SELECT count(*)::int AS n FROM pg_proc WHERE proname = \'aggregate_customer_usage\'')
  t.equal(fn.rows[0].n, 1)
})

t.test('npm run migrate applies migrations to DATABASE_URL and reports them', async (t) => {
  const url = await scratchDatabase(t)
  const run = promisify(execFile)
  const env = { PATH: process.env.PATH, DATABASE_URL: url }
  // The compiled script is what operators and the container run; the TypeScript source is the same code.
  const first = await run(process.execPath, runTypeScript(path.join(root, 'scripts', 'migrate.ts')), { cwd: os.tmpdir(), env })
  t.match(first.stdout, /ok +up 2026_11_24_0900_usage_events/)
  const second = await run(process.execPath, runTypeScript(path.join(root, 'scripts', 'migrate.ts')), { cwd: os.tmpdir(), env })
  t.match(second.stdout, /already up to date/)
})

t.test('organizations: a database of the previous release migrates with every row in default, and back', async (t) => {
  const { url, db } = await scratchKysely(t)
  const migrator = createMigrator(db)
  const { error } = await migrator.migrateTo('2026_11_26_1400_dashboard_indexes')
  t.equal(error, undefined)
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  await client.connect()
  t.teardown(() => client.end())

  // One row or more in every table that now belongs to an organization, as the previous release wrote them.
  await client.query(`
    INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, cost_usd, "timestamp", source, fingerprint, status)
    VALUES ('req-1', 'cus-1', 'gpt-4o', 'openai', 0.00375, now(), 'webhook', 'f1', 'forwarded'),
           ('req-2', 'cus-2', 'gpt-4o', 'openai', 1.5, now(), 'webhook', 'f2', 'pending');
    INSERT INTO customers (external_id, subscription_external_id) VALUES ('cus-1', 'sub-1');
    INSERT INTO customer_mappings (identity, value, customer_external_id) VALUES ('team', 't1', 'cus-1');
    INSERT INTO customer_provisioning_claims VALUES ('cus-2', gen_random_uuid(), 'w1', now());
    INSERT INTO webhook_delivery_logs (event_type, endpoint, request_count, duration_ms) VALUES ('usage', '/api/v1/events/batch', 1, 12);
    INSERT INTO litellm_spend_ledger (customer_id, spend_usd, body_sha256) VALUES ('cus-1', 0.1, 'b1');
    INSERT INTO litellm_reconciliation (name, cursor) VALUES ('spend_logs', now());
    INSERT INTO lago_webhooks (unique_key, webhook_type, object_type, organization_id, signature_algo, body)
    VALUES ('u1', 'invoice.created', 'invoice', 'lago-org-1', 'hmac', '{}');
    INSERT INTO lago_invoices (lago_id, customer_external_id, number, issuing_date, status, payment_status, invoice_type, lago_created_at)
    VALUES ('inv-1', 'cus-1', 'N-1', '2026-11-01', 'finalized', 'pending', 'subscription', '2026-11-01T00:00:00Z');
    INSERT INTO api_keys (name, key_prefix, key_hash) VALUES ('ops', 'lai_abc', '\\x01');`)
  const tables = ['litellm_usage_events', 'customers', 'customer_mappings', 'customer_provisioning_claims', 'webhook_delivery_logs',
    'litellm_spend_ledger', 'litellm_reconciliation', 'lago_webhooks', 'lago_invoices', 'api_keys']
  const counts = async (): Promise<Record<string, number>> => Object.fromEntries(await Promise.all(tables.map(async (table) =>
    [table, (await client.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number])))
  const before = await counts()
  t.same(Object.values(before).filter((n) => n === 0), [], 'every table has rows')

  await migrateToLatest(db)
  t.same(await counts(), before, 'no row lost')
  for (const table of tables) {
    const { rows } = await client.query(`SELECT organization_id, count(*)::int AS n FROM ${table} GROUP BY 1`)
    t.same(rows, [{ organization_id: 'default', n: before[table] }], `${table}: every row in default`)
  }
  t.same((await client.query('SELECT id, status FROM organizations')).rows, [{ id: 'default', status: 'active' }])
  t.same((await client.query('SELECT lago_organization_id FROM lago_webhooks')).rows, [{ lago_organization_id: 'lago-org-1' }], 'Lago\'s organization id kept')
  const usage = await client.query('SELECT model, total_cost_usd::text AS cost FROM aggregate_customer_usage(\'cus-1\', now() - interval \'1 day\', now() + interval \'1 day\')')
  t.same(usage.rows, [{ model: 'gpt-4o', cost: '0.00375' }], 'the seed\'s three-argument call reads default')

  // Per organization now: the same request id and customer id in another organization are other rows.
  await client.query('INSERT INTO organizations (id, name) VALUES (\'beta\', \'Beta\')')
  const { rows: [beta1] } = await client.query(`INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, "timestamp", source, fingerprint)
                      VALUES ('beta', 'req-1', 'cus-1', 'gpt-4o', 'openai', now(), 'webhook', 'f9') RETURNING id`)
  await client.query('INSERT INTO customers (organization_id, external_id) VALUES (\'beta\', \'cus-1\')')
  // The dedupe key lives in usage_event_keys since the events table is partitioned (its own keys must hold the month).
  await client.query('INSERT INTO usage_event_keys (organization_id, request_id, event_id, fingerprint) VALUES (\'beta\', \'req-1\', $1, \'f9\')', [beta1.id])
  await t.rejects(client.query('INSERT INTO usage_event_keys (organization_id, request_id, event_id, fingerprint) VALUES (\'default\', \'req-1\', 0, \'f9\')'),
    { code: '23505' }, 'still unique within one organization')
  await t.rejects(client.query('INSERT INTO customers (organization_id, external_id) VALUES (\'nope\', \'cus-9\')'), { code: '23503' }, 'only existing organizations')
  await t.rejects(client.query('INSERT INTO organizations (id, name) VALUES (\'Upper Case\', \'x\')'), { code: '23514' }, 'ids are lowercase slugs')
  const beta = await client.query('SELECT count(*)::int AS n FROM aggregate_customer_usage(\'cus-1\', now() - interval \'1 day\', now() + interval \'1 day\', \'beta\')')
  t.equal(beta.rows[0].n, 1, 'the fourth argument names the organization')

  // Down refuses while another organization has rows (they would merge into one), and works once it is gone.
  // (The later migrations are undone first.)
  t.equal((await migrator.migrateTo('2026_11_26_1500_organizations')).error, undefined)
  t.ok((await migrator.migrateDown()).error, 'down refused with a second organization')
  await client.query('DELETE FROM litellm_usage_events WHERE organization_id = \'beta\'; DELETE FROM customers WHERE organization_id = \'beta\'; DELETE FROM organizations WHERE id = \'beta\'')
  const down = await migrator.migrateDown()
  t.equal(down.error, undefined)
  t.same(await counts(), before, 'down loses nothing')
  t.same((await client.query('SELECT organization_id FROM lago_webhooks')).rows, [{ organization_id: 'lago-org-1' }], 'the column is Lago\'s again')
  t.equal((await client.query('SELECT to_regclass(\'organizations\') AS r')).rows[0].r, null)
})

t.test('claims (2100): down puts each live claim and what it froze back into its event', async (t) => {
  const { url, db } = await scratchKysely(t)
  await migrateToLatest(db)
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  await client.connect()
  t.teardown(() => client.end())
  const { rows: [held, free] } = await client.query(`
    INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, cost_usd, "timestamp", source, fingerprint)
    VALUES ('req-1', 'cus-1', 'gpt-4o', 'openai', 0.5, now(), 'webhook', 'f1'), ('req-2', 'cus-1', 'gpt-4o', 'openai', 0.5, now(), 'webhook', 'f2')
    RETURNING id`)
  // (received_at copied in SQL: a Date would drop its microseconds.)
  await client.query(`INSERT INTO usage_event_claims (event_id, received_at, organization_id, worker, lease_expires_at, external_subscription_id, lago_payload)
    SELECT id, received_at, 'default', 'w1', now() + interval '1 minute', 'sub-1', '{"transaction_id":"req-1"}' FROM litellm_usage_events WHERE id = $1`, [held.id])

  // Down to the migration before 2100: the later ones come down first (1000 puts the claims' foreign key back).
  const { error } = await createMigrator(db).migrateTo('2026_11_26_2000_no_global_unsent_index')
  t.equal(error, undefined)
  const { rows } = await client.query('SELECT id, claimed_by, claim_token > 0 AS claimed, lease_expires_at > now() AS leased, external_subscription_id, lago_payload FROM litellm_usage_events ORDER BY id')
  t.same(rows, [
    { id: held.id, claimed_by: 'w1', claimed: true, leased: true, external_subscription_id: 'sub-1', lago_payload: { transaction_id: 'req-1' } },
    { id: free.id, claimed_by: null, claimed: false, leased: null, external_subscription_id: null, lago_payload: null }
  ])
  t.equal((await client.query('SELECT to_regclass(\'usage_event_claims\') AS t')).rows[0].t, null, 'the claims table is gone')
  const { error: again } = await createMigrator(db).migrateToLatest()
  t.equal(again, undefined, 'and up again')
})
