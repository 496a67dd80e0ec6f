// Service API keys for /api and the admin webhooks, stored as SHA-256 digests in PostgreSQL:
//   npm run keys -- create <name>     -> prints the new key (its only appearance) on the last line
//   npm run keys -- list              -> id, name, prefix, created, revoked
//   npm run keys -- revoke <id|name>  -> the key stops working at once
import { existsSync } from 'node:fs'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import { loadConfig } from '../plugins/external/config.js'
import { ensureDatabase, migrateToLatest } from '../db/migrator.js'
import { openDatabase } from '../db/connection.js'
import { StartupError } from '../db/startup-errors.js'
import { DEFAULT_ORGANIZATION_ID, type Database } from '../db/database.js'
import { createApiKey, listApiKeys, revokeApiKey } from '../plugins/app/api-keys/repository.js'

const USAGE = 'usage: npm run keys -- create <name> | list | revoke <id|name>'

const [command, argument] = process.argv.slice(2)
if (!(command === 'list' || ((command === 'create' || command === 'revoke') && argument !== undefined && argument.trim() !== ''))) {
  console.error(USAGE)
  process.exit(2)
}

if (existsSync('.env')) process.loadEnvFile('.env')
const config = loadConfig(process.env)
// Like the service: a fresh database is created and migrated (RUN_MIGRATIONS=false leaves that to `npm run migrate`).
// Without DATABASE_URL: the embedded server of DATA_DIR (joined when the service runs it, else started and stopped).
const database = await openDatabase(config).catch((err: unknown) => {
  if (!(err instanceof StartupError)) throw err
  console.error(`keys failed: ${err.message}`)
  process.exit(1)
})
if (config.RUN_MIGRATIONS && database.type === 'external') await ensureDatabase(database.url)
const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: database.url, max: 1 }) }) })
let status = 0
try {
  if (config.RUN_MIGRATIONS) await migrateToLatest(db)
  if (command === 'create') {
    const name = argument.trim()
    const { key, info } = await createApiKey(db, name)
    console.log(`Created API key ${info.id} "${info.name}". Store it now: it is shown only this once.`)
    console.log(key)
  } else if (command === 'revoke') {
    const info = await revokeApiKey(db, DEFAULT_ORGANIZATION_ID, argument.trim())
    if (info === null) {
      console.error(`No live API key with id or name "${argument}"`)
      status = 1
    } else {
      console.log(`Revoked API key ${info.id} "${info.name}" (${info.prefix}…)`)
    }
  } else {
    const keys = await listApiKeys(db, DEFAULT_ORGANIZATION_ID)
    if (keys.length === 0) console.log('No API keys yet: npm run keys -- create <name>')
    for (const k of keys) {
      console.log([String(k.id).padEnd(5), k.name.padEnd(24), `${k.prefix}…`.padEnd(14), k.created_at.toISOString(),
        k.revoked_at !== null ? `revoked ${k.revoked_at.toISOString()}` : 'live'].join('  '))
    }
  }
} catch (err) {
  // A live key already has this name (the unique index).
  if ((err as { code?: string }).code === '23505') {
    console.error(`A live API key is already named "${argument}": revoke it first or choose another name`)
  } else {
    console.error('keys failed:', err instanceof Error ? err.message : err)
  }
  status = 1
} finally {
  await db.destroy()
  await database.stop()
}
process.exit(status)
