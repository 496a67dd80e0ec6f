import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { Redis } from 'ioredis'
import tap from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../app.js'
import { loadConfig } from '../../plugins/external/config.js'
import type { Config, Tuning } from '../../schemas/config.js'
import { templateDatabase, testServerUrl } from '../setup/postgres.js'

// tap runs TypeScript through tsx's --import hook, which @fastify/autoload does not detect by itself.
process.env.FASTIFY_AUTOLOAD_TYPESCRIPT = '1'

// TEST_POSTGRES_URL, else the embedded server the run's `before` script started (nothing on 5432), else 5432.
export const POSTGRES_URL = testServerUrl()
/**
 * TEST_REDIS_URL, else the local Redis if one answers, else none: the apps then run with REDIS_URL unset (rate
 * limits and cache in-process), said once per run. With CI=true a missing Redis is a failure, not a fallback.
 */
export const REDIS_URL: string | undefined = process.env.TEST_REDIS_URL ?? await localRedis()

async function localRedis (): Promise<string | undefined> {
  const url = 'redis://127.0.0.1:6379'
  const probe = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  const answers = await probe.connect().then(async () => await probe.ping() === 'PONG', () => false)
  probe.disconnect()
  if (answers) return url
  if (process.env.CI === 'true') throw new Error(`CI=true: no Redis at ${url} and TEST_REDIS_URL is unset; CI tests the real Redis`)
  // Once per tap run: the runner is every test file's parent.
  try {
    writeFileSync(path.join(os.tmpdir(), `lai-test-no-redis-${process.ppid}`), '', { flag: 'wx' })
    process.stderr.write(`No Redis at ${url} (TEST_REDIS_URL unset): tests run with REDIS_URL unset, rate limits and cache in-process\n`)
  } catch {}
  return undefined
}

export type TestContext = { teardown: (fn: () => unknown) => void }

let databaseUrl: Promise<string> | undefined

/**
 * `npm test` runs several test files in one process, one after the other (scripts/build-tests.ts): each file
 * still gets a database of its own, created when it first asks for one. Called before each file is loaded.
 */
export function beginTestFile (): void {
  databaseUrl = undefined
}

/**
 * The fresh database of this test file: created on first use, dropped when the process's tests end. It is a copy
 * of the run's migrated template (test/setup/postgres.ts); run outside tap (no template), it starts empty and
 * migrations run when the first app starts, as in production.
 */
export function testDatabaseUrl (): Promise<string> {
  databaseUrl ??= (async () => {
    const name = `lai_test_${process.pid}_${randomBytes(4).toString('hex')}`
    const admin = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
    await admin.connect()
    try {
      await admin.query(`CREATE DATABASE ${name} TEMPLATE ${templateDatabase()}`)
    } catch (err) {
      if ((err as { code?: string }).code !== '3D000') throw err
      await admin.query(`CREATE DATABASE ${name}`)
    } finally {
      await admin.end()
    }
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
export async function build (t: TestContext, env: Record<string, string | undefined> = {}, tuning: Partial<Tuning> = {}): Promise<FastifyInstance> {
  const config = await testConfig(env)
  const app = await buildApp(config, {}, tuning)
  t.teardown(async () => {
    await app.close()
    if (REDIS_URL !== undefined) await deleteRedisKeys(REDIS_URL, config.REDIS_KEY_PREFIX)
  })
  await app.ready()
  return app
}

async function deleteRedisKeys (url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
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

// Under `npm test` this file is itself transpiled JavaScript (scripts/build-tests.ts) next to every other file.
const transpiled = import.meta.url.endsWith('.js')
/**
 * `node` arguments that run an entry file of this repository (named by its .ts path) from any working directory:
 * its transpiled .js twin under `npm test`, else the TypeScript through tsx.
 */
export const runTypeScript = (file: string): string[] => transpiled
  ? ['--enable-source-maps', file.replace(/\.ts$/, '.js')]
  : ['--import', import.meta.resolve('tsx'), file]
