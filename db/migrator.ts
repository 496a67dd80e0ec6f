import { promises as fs } from 'node:fs'
import path from 'node:path'
import pg from 'pg'
import { FileMigrationProvider, Migrator, sql, type Kysely, type MigrationResultSet } from 'kysely'

export const migrationFolder = path.join(import.meta.dirname, 'migrations')

export function createMigrator (db: Kysely<any>): Migrator {
  return new Migrator({ db, provider: new FileMigrationProvider({ fs, path, migrationFolder }) })
}

/**
 * Brings the schema to the latest migration. Kysely's PostgreSQL adapter holds an advisory lock for the
 * whole run, so replicas starting together apply each migration exactly once and wait for each other.
 */
export async function migrateToLatest (db: Kysely<any>): Promise<MigrationResultSet> {
  if (await upToDate(db)) return { results: [] }
  const result = await createMigrator(db).migrateToLatest()
  if (result.error !== undefined) {
    const failed = result.results?.find((r) => r.status === 'Error')
    const cause = result.error instanceof Error ? result.error : new Error(String(result.error))
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${cause.message}`, { cause })
  }
  return result
}

/**
 * Whether the database has applied exactly the folder's migrations, in their order: Kysely's migrator would then
 * do nothing. Checked with one query, where the migrator reads the catalog twice, takes its lock and imports
 * every migration file (about 35 ms of each start). Anything else (a migration pending or applied concurrently,
 * no migration table yet, an error) is left to the migrator, which also reports corrupted migration histories.
 */
async function upToDate (db: Kysely<any>): Promise<boolean> {
  try {
    // A new database has no migration table: asked first, so that PostgreSQL logs no error for it.
    const { rows: [table] } = await sql<{ present: boolean }>`SELECT to_regclass('kysely_migration') IS NOT NULL AS present`.execute(db)
    if (table?.present !== true) return false
    const [files, { rows }] = await Promise.all([
      fs.readdir(migrationFolder),
      sql<{ name: string, timestamp: string }>`SELECT name, "timestamp" FROM kysely_migration`.execute(db)
    ])
    // The files FileMigrationProvider would import, named as it names them, in the migrator's order.
    const folder = files
      .filter((f) => /\.m?[jt]s$/.test(f) && !/\.d\.m?ts$/.test(f))
      .map((f) => f.slice(0, f.lastIndexOf('.')))
      .sort()
    // The applied ones in the migrator's order (by timestamp, then name).
    const applied = rows
      .sort((a, b) => a.timestamp === b.timestamp ? a.name.localeCompare(b.name) : new Date(a.timestamp).getTime() - new Date(b.timestamp).getTime())
      .map((r) => r.name)
    return applied.length === folder.length && applied.every((name, i) => name === folder[i])
  } catch {
    return false
  }
}

/**
 * Creates the database named in the URL when it does not exist yet, so that a fresh machine needs no manual
 * createdb. Connects to the server's `postgres` database to do it.
 */
export async function ensureDatabase (connectionString: string): Promise<boolean> {
  const probe = new pg.Client({ connectionString })
  try {
    await probe.connect()
    return false
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err
  } finally {
    await probe.end().catch(() => {})
  }
  const url = new URL(connectionString)
  const name = decodeURIComponent(url.pathname.slice(1))
  url.pathname = '/postgres'
  const admin = new pg.Client({ connectionString: url.toString() })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`)
  } catch (err) {
    // Another replica created it first (42P04), or at the same moment (23505 on pg_database's unique index).
    const code = (err as { code?: string }).code
    if (code !== '42P04' && code !== '23505') throw err
  } finally {
    await admin.end()
  }
  return true
}
