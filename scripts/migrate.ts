// Applies (or, with "down", reverts one) database migration, for deploy steps and operators:
//   npm run migrate            -> latest
//   npm run migrate -- down    -> revert the newest
import { existsSync } from 'node:fs'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import { loadConfig } from '../plugins/external/config.js'
import { createMigrator, ensureDatabase } from '../db/migrator.js'
import { openDatabase } from '../db/connection.js'
import { StartupError } from '../db/startup-errors.js'

if (existsSync('.env')) process.loadEnvFile('.env')
// Without DATABASE_URL: the embedded server of DATA_DIR (joined when the service runs it, else started and stopped).
const database = await openDatabase(loadConfig(process.env)).catch((err: unknown) => {
  if (!(err instanceof StartupError)) throw err
  console.error(`migration failed: ${err.message}`)
  process.exit(1)
})
if (database.type === 'external') await ensureDatabase(database.url)
const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 1 }) }) })
const migrator = createMigrator(db)
const { error, results } = process.argv[2] === 'down' ? await migrator.migrateDown() : await migrator.migrateToLatest()
for (const r of results ?? []) console.log(`${r.status === 'Success' ? 'ok  ' : 'FAIL'} ${r.direction.toLowerCase()} ${r.migrationName}`)
if ((results ?? []).length === 0 && error === undefined) console.log('already up to date')
await db.destroy()
await database.stop()
if (error !== undefined) {
  console.error('migration failed:', error)
  process.exit(1)
}
