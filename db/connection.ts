import path from 'node:path'
import pg from 'pg'
import type { Config } from '../schemas/config.js'
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.js'
import { databaseStartupError, databaseTarget } from './startup-errors.js'

export interface DatabaseInUse {
  /** external: DATABASE_URL; embedded: the server started from DATA_DIR because DATABASE_URL is unset. */
  type: 'external' | 'embedded'
  /** Connection string (may hold a password: never log it). */
  url: string
  /** What the log and /health say: `embedded PostgreSQL 17.10 in ./data`, or `PostgreSQL at db:5432/lago`. */
  description: string
  /** The variable a failure points at. */
  variable: 'DATABASE_URL' | 'DATA_DIR'
  embedded?: EmbeddedPostgres
  /** Stops the embedded server (after the pool has ended); nothing for an external database. */
  stop: () => Promise<void>
}

/** Embedded servers being started or running in this process, by data directory: started once, shared by callers. */
const embeddedStarts = new Map<string, Promise<DatabaseInUse>>()

/** DATA_DIR as the user wrote it when relative (`./data`), for messages. */
const shownDir = (dir: string): string => path.isAbsolute(dir) || dir.startsWith('.') ? dir : `./${dir}`

/**
 * The database this process uses: DATABASE_URL when set (exactly as given), else the embedded PostgreSQL of
 * DATA_DIR, started (or joined) here. Throws a StartupError naming the variable when that fails.
 */
export async function openDatabase (config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR' | 'DATABASE_POOL_MAX'>, log: (message: string) => void = () => {}): Promise<DatabaseInUse> {
  if (config.DATABASE_URL !== undefined) {
    const { where, database } = databaseTarget(config.DATABASE_URL)
    return { type: 'external', url: config.DATABASE_URL, description: `PostgreSQL at ${where}/${database}`, variable: 'DATABASE_URL', stop: async () => {} }
  }
  // server.ts opens it before building the app (an initdb can outlast Fastify's plugin timeout on a slow machine);
  // the database plugin then gets the same server.
  const key = path.resolve(config.DATA_DIR)
  let start = embeddedStarts.get(key)
  if (start === undefined) {
    start = (async (): Promise<DatabaseInUse> => {
      const embedded = await startEmbeddedPostgres({
        dataDir: config.DATA_DIR,
        displayDir: shownDir(config.DATA_DIR),
        log,
        // The pool, plus npm run keys / migrate and a psql session alongside.
        maxConnections: Math.max(100, config.DATABASE_POOL_MAX + 20)
      })
      const stop = async (): Promise<void> => {
        embeddedStarts.delete(key)
        await embedded.stop()
      }
      return { type: 'embedded', url: embedded.url, description: embedded.description, variable: 'DATA_DIR', embedded, stop }
    })()
    embeddedStarts.set(key, start)
    start.catch(() => embeddedStarts.delete(key))
  }
  return await start
}

/** Connects once, so that a wrong host, port, password or permission stops the start with one clear line. */
export async function checkConnection (database: DatabaseInUse, timeoutMs: number): Promise<void> {
  const client = new pg.Client({ connectionString: database.url, connectionTimeoutMillis: timeoutMs })
  client.on('error', () => {})
  try {
    await client.connect()
    await client.query('SELECT 1')
  } catch (err) {
    throw databaseStartupError(err, database.url, database.type === 'embedded' ? 'DATA_DIR' : 'DATABASE_URL')
  } finally {
    await client.end().catch(() => {})
  }
}
