// Applies (or, with "down", reverts one) database migration, for deploy steps and operators:
//   npm run migrate            -> latest
//   npm run migrate -- down    -> revert the newest
import { existsSync } from 'node:fs'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import { loadConfig } from '../plugins/external/config.js'
import { createMigrator, ensureDatabase } from '../db/migrator.js'

if (existsSync('.env')) process.loadEnvFile('.env')
const { DATABASE_URL } = loadConfig(process.env)
await ensureDatabase(DATABASE_URL)
const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: DATABASE_URL, max: 1 }) }) })
const migrator = createMigrator(db)
const { error, results } = process.argv[2] === 'down' ? await migrator.migrateDown() : await migrator.migrateToLatest()
for (const r of results ?? []) console.log(`${r.status === 'Success' ? 'ok  ' : 'FAIL'} ${r.direction.toLowerCase()} ${r.migrationName}`)
if ((results ?? []).length === 0 && error === undefined) console.log('already up to date')
await db.destroy()
if (error !== undefined) {
  console.error('migration failed:', error)
  process.exit(1)
}
