import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { Redis } from 'ioredis'
import tap from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../app.js'
import { loadConfig } from '../../plugins/external/config.js'
import type { Config } from '../../schemas/config.js'

// tap runs TypeScript through tsx's --import hook, which @fastify/autoload does not detect by itself.
process.env.FASTIFY_AUTOLOAD_TYPESCRIPT = '1'

export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432'
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

type TestContext = { teardown: (fn: () => unknown) => void }

let databaseUrl: Promise<string> | undefined

/**
 * The fresh database of this test file (tap runs each file in its own process): created on first use, dropped
 * when the file's tests end. Migrations run when the first app starts, as in production.
 */
export function testDatabaseUrl (): Promise<string> {
  databaseUrl ??= (async () => {
    const name = `lai_test_${process.pid}_${randomBytes(4).toString('hex')}`
    const admin = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
    await admin.connect()
    await admin.query(`CREATE DATABASE ${name}`)
    await admin.end()
    tap.teardown(async () => {
      const dropper = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
      await dropper.connect()
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await dropper.end()
    })
    return `${POSTGRES_URL}/${name}`
  })()
  return databaseUrl
}

/** A config for tests: this file's database, a Redis key prefix of its own, quiet logs. */
export async function testConfig (env: Record<string, string | undefined> = {}): Promise<Config> {
  return loadConfig({
    DATABASE_URL: await testDatabaseUrl(),
    REDIS_URL,
    REDIS_KEY_PREFIX: `test:${process.pid}:${randomBytes(3).toString('hex')}:`,
    LOG_LEVEL: 'silent',
    ...env
  })
}

/** Builds the whole service as production does, closed when the calling test ends. */
export async function build (t: TestContext, env: Record<string, string | undefined> = {}): Promise<FastifyInstance> {
  const config = await testConfig(env)
  const app = await buildApp(config)
  t.teardown(async () => {
    await app.close()
    await deleteRedisKeys(config.REDIS_KEY_PREFIX)
  })
  await app.ready()
  return app
}

async function deleteRedisKeys (prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    const stream = redis.scanStream({ match: `${prefix}*`, count: 500 })
    for await (const keys of stream) if ((keys as string[]).length > 0) await redis.del(...(keys as string[]))
  } finally {
    redis.disconnect()
  }
}

/** A plain pg client on this file's database, for assertions on what is stored. */
export async function sqlClient (t: TestContext): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: await testDatabaseUrl() })
  await client.connect()
  t.teardown(async () => { await client.end() })
  return client
}

let counter = 0
/** A unique request id for this file. */
export const uid = (prefix = 'req'): string => `${prefix}-${process.pid}-${Date.now().toString(36)}-${(counter++).toString(36)}`

/** The seed README's event, with overrides. */
export function seedEvent (overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    event_type: 'usage',
    timestamp: 1703123456,
    customer_id: 'customer-123',
    model: 'gpt-4o',
    provider: 'openai',
    tokens_input: 100,
    tokens_output: 150,
    total_tokens: 250,
    cost_usd: 0.00375,
    request_id: uid(),
    api_key_hash: 'key_a1b2c3',
    ...overrides
  }
}

/** `node` arguments that run a TypeScript entry file of this repository from any working directory. */
export const runTypeScript = (file: string): string[] => ['--import', import.meta.resolve('tsx'), file]
