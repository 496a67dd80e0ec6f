import fp from 'fastify-plugin'
import fastifyPostgres from '@fastify/postgres'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { Database } from '../../db/database.js'
import { ensureDatabase, migrateToLatest } from '../../db/migrator.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Kysely<Database>
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
  if (config.RUN_MIGRATIONS) {
    if (await ensureDatabase(config.DATABASE_URL)) fastify.log.info('created the database named in DATABASE_URL')
  }

  // @fastify/postgres owns the pool and ends it on close; Kysely only borrows it and is never destroyed.
  await fastify.register(fastifyPostgres, {
    connectionString: config.DATABASE_URL,
    max: config.DATABASE_POOL_MAX,
    connectionTimeoutMillis: config.DATABASE_CONNECT_TIMEOUT_MS,
    query_timeout: config.DATABASE_QUERY_TIMEOUT_MS,
    types
  })
  // Without a listener, an idle connection dropped by a PostgreSQL restart would crash the process.
  fastify.pg.pool.on('error', (err) => fastify.log.warn({ err }, 'idle PostgreSQL connection lost; the pool reconnects on demand'))

  const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool: fastify.pg.pool }) })
  fastify.decorate('db', kysely)

  if (config.RUN_MIGRATIONS) {
    const { results } = await migrateToLatest(kysely)
    for (const r of results ?? []) fastify.log.info({ migration: r.migrationName }, 'migration applied')
  }
}, { name: 'db', dependencies: ['config'] })
