import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { TestContext } from './app.js'
import { POSTGRES_URL } from './app.js'
import { createMigrator } from '../../db/migrator.js'

/**
 * An empty database of its own for a migration test, with a pool, a Kysely instance and its migrator. One teardown
 * closes the pool and every client taken with `client()` before the database is dropped (a drop WITH (FORCE) first
 * would end their connections under them: an unhandled 57P01 error).
 */
export async function scratchDatabase (t: TestContext, prefix: string) {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`
  const admin = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  const url = `${POSTGRES_URL}/${name}`
  const pool = new pg.Pool({ connectionString: url, max: 2 })
  // pg's pool.end() resolves once its clients are told to end, not once their sockets are closed: the drop WITH
  // (FORCE) below can still terminate one (seen under load), whose error would otherwise be unhandled.
  pool.on('error', () => {})
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) })
  const clients: pg.Client[] = []
  t.teardown(async () => {
    await Promise.all(clients.map(async (c) => { await c.end().catch(() => {}) }))
    await db.destroy()
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  })
  return {
    url,
    pool,
    db,
    migrator: createMigrator(db),
    /** A plain client on this database, ended at teardown before the drop. */
    async client (): Promise<pg.Client> {
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      clients.push(client)
      return client
    }
  }
}
