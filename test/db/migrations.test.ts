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
  const url = await scratchDatabase(t)
  await ensureDatabase(url)
  const db = kysely(url)
  t.teardown(() => db.destroy())
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
  const tables = await client.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE 'kysely_%'`)
  t.same(tables.rows, [], 'nothing left after reverting everything')
  await migrateToLatest(db)
  const fn = await client.query(`SELECT count(*)::int AS n FROM pg_proc WHERE proname = 'aggregate_customer_usage'`)
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
