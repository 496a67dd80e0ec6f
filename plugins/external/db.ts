import fp from 'fastify-plugin'
import fastifyPostgres from '@fastify/postgres'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { Database } from '../../db/database.js'
import { ensureDatabase, migrateToLatest } from '../../db/migrator.js'
import { DatabaseAvailability } from '../../db/availability.js'
import { guardConnections, trackedPool } from '../../db/connections.js'
import { checkConnection, openDatabase, type DatabaseInUse } from '../../db/connection.js'
import { databaseStartupError } from '../../db/startup-errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
    /** Whether PostgreSQL answers; error handlers report refused requests to it (outage logs are aggregated). */
    dbAvailability: DatabaseAvailability
    /** Which PostgreSQL this instance uses (DATABASE_URL, or the embedded one in DATA_DIR). */
    database: Pick<DatabaseInUse, 'type' | 'description'>
  }
}

const INT8_OID = 20
/** bigint columns (ids, token counts) as numbers: they stay far below 2^53. numeric stays a string. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser
}

export default fp(async function db (fastify) {
  const { config } = fastify
  // DATABASE_URL, or the embedded server of DATA_DIR; stopped last on close (onClose hooks run newest first).
  const database = await openDatabase(config, (message) => fastify.log.info(message))
  fastify.addHook('onClose', database.stop)
  fastify.decorate('database', { type: database.type, description: database.description })
  fastify.log.info({ database: database.description }, `database: ${database.description}`)
  try {
    try {
      await checkConnection(database, config.DATABASE_CONNECT_TIMEOUT_MS)
    } catch (err) {
      // The database named in DATABASE_URL does not exist yet: created here (RUN_MIGRATIONS), then connected to.
      // Checked in this order, a start on an existing database opens one connection before the pool, not two.
      const missing = (err as { cause?: { code?: unknown } }).cause?.code === '3D000'
      if (!(missing && config.RUN_MIGRATIONS && database.type === 'external')) throw err
      if (await ensureDatabase(database.url)) fastify.log.info('created the database named in DATABASE_URL')
      await checkConnection(database, config.DATABASE_CONNECT_TIMEOUT_MS)
    }
  } catch (err) {
    await database.stop()
    throw databaseStartupError(err, database.url, database.variable)
  }

  // @fastify/postgres owns the pool and ends it on close; Kysely only borrows it and is never destroyed.
  await fastify.register(fastifyPostgres, {
    connectionString: database.url,
    max: config.DATABASE_POOL_MAX,
    connectionTimeoutMillis: config.DATABASE_CONNECT_TIMEOUT_MS,
    query_timeout: config.DATABASE_QUERY_TIMEOUT_MS,
    types
  })
  // A connection lost by a PostgreSQL restart, crash or failover, idle or checked out, must never crash the process.
  const availability = new DatabaseAvailability({ log: fastify.log })
  guardConnections(fastify.pg.pool, availability)
  fastify.decorate('dbAvailability', availability)
  fastify.addHook('onClose', async () => { availability.close() })

  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool: trackedPool(fastify.pg.pool, availability) }) })
  fastify.decorate('db', kysely)

  if (config.RUN_MIGRATIONS) {
    const { results } = await migrateToLatest(kysely).catch(async (err: unknown) => {
      await fastify.pg.pool.end().catch(() => {})
      await database.stop()
      throw databaseStartupError(err, database.url, database.variable)
    })
    for (const r of results ?? []) fastify.log.info({ migration: r.migrationName }, 'migration applied')
  }
}, { name: 'db', dependencies: ['config'] })
