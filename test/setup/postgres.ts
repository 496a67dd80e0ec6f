// The PostgreSQL of a test run, chosen once by tap's `before` script (.taprc) and stopped by its `after` script:
//   TEST_POSTGRES_URL set         -> that server (TEST_POSTGRES_URL=embedded forces the embedded one)
//   127.0.0.1:5432 answers        -> that server
//   nothing answers, CI=true      -> failure: CI tests the real services, it never falls back
//   nothing answers otherwise     -> ONE embedded PostgreSQL for the whole run (data in .tap/embedded-postgres);
//                                    each test file still creates and drops its own database on it.
// The choice is written to .tap/test-postgres.json, which test/helpers/app.ts reads.
// The before script also migrates one template database for the run (named after the tap runner's pid, which is
// the parent of the before script, of every test file and of the after script); each file's database is a copy
// of it, so migrations run once per run instead of once per file. The after script drops it.
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import pg from 'pg'

export const DEFAULT_TEST_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432'
const root = path.join(import.meta.dirname, '..', '..')
const stateFile = path.join(root, '.tap', 'test-postgres.json')
const dataDir = path.join(root, '.tap', 'embedded-postgres')

interface State { url: string, embedded: boolean }

/** The server URL (no database) chosen by the `before` script of this run, if it chose the embedded server. */
export function embeddedTestServer (): string | undefined {
  if (!existsSync(stateFile)) return undefined
  try {
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as State
    return state.embedded ? state.url : undefined
  } catch {
    return undefined
  }
}

async function answers (url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: `${url}/postgres`, connectionTimeoutMillis: 3000 })
  client.on('error', () => {})
  try {
    await client.connect()
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

/** The migrated template of the tap run this process belongs to (see above). */
export const templateDatabase = (): string => `lai_test_template_${process.ppid}`

/** The server of this run: TEST_POSTGRES_URL, else the embedded server the before script started, else 5432. */
export function testServerUrl (): string {
  const configured = process.env.TEST_POSTGRES_URL
  return configured !== undefined && configured !== '' && configured !== 'embedded'
    ? configured
    : embeddedTestServer() ?? DEFAULT_TEST_POSTGRES_URL
}

async function adminQuery (url: string, sql: string): Promise<void> {
  const admin = new pg.Client({ connectionString: `${url}/postgres` })
  await admin.connect()
  try {
    await admin.query(sql)
  } finally {
    await admin.end()
  }
}

async function createTemplate (): Promise<number> {
  const url = testServerUrl()
  const name = templateDatabase()
  const started = performance.now()
  try {
    await adminQuery(url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await adminQuery(url, `CREATE DATABASE ${name}`)
    const { Kysely, PostgresDialect } = await import('kysely')
    const { migrateToLatest } = await import('../../db/migrator.js')
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: `${url}/${name}`, max: 1 }) }) })
    try {
      await migrateToLatest(db)
    } finally {
      await db.destroy()
    }
  } catch (err) {
    process.stderr.write(`could not migrate the test template database ${name}: ${String(err)}\n`)
    return 1
  }
  process.stderr.write(`# migrated the template database ${name} in ${Math.round(performance.now() - started)} ms; each test file's database is a copy\n`)
  return 0
}

export async function before (): Promise<number> {
  await rm(stateFile, { force: true })
  const chosen = await chooseServer()
  return chosen !== 0 ? chosen : await createTemplate()
}

async function chooseServer (): Promise<number> {
  const configured = process.env.TEST_POSTGRES_URL
  if (configured !== undefined && configured !== '' && configured !== 'embedded') return 0
  if (configured !== 'embedded' && await answers(DEFAULT_TEST_POSTGRES_URL)) return 0
  if (configured !== 'embedded' && process.env.CI === 'true') {
    process.stderr.write('TEST_POSTGRES_URL: PostgreSQL does not answer on 127.0.0.1:5432 and CI=true: CI tests the real ' +
      'server and never falls back to the embedded one (set TEST_POSTGRES_URL, or TEST_POSTGRES_URL=embedded on purpose)\n')
    return 1
  }
  const { startEmbeddedPostgres } = await import('../../db/embedded-postgres.js')
  const { StartupError } = await import('../../db/startup-errors.js')
  const started = performance.now()
  try {
    const server = await startEmbeddedPostgres({ dataDir, displayDir: '.tap/embedded-postgres', database: 'postgres', maxConnections: 300 })
    await mkdir(path.dirname(stateFile), { recursive: true })
    await writeFile(stateFile, JSON.stringify({ url: server.serverUrl, embedded: true } satisfies State))
    process.stderr.write(`# tests use an ${server.description} (nothing answers on 127.0.0.1:5432), ` +
      `${server.initialised ? 'initialised' : 'started'} in ${Math.round(performance.now() - started)} ms; one database per test file\n`)
    return 0
  } catch (err) {
    process.stderr.write(`no PostgreSQL for the tests: ${err instanceof StartupError ? err.message : String(err)}\n`)
    return 1
  }
}

export async function after (): Promise<number> {
  await adminQuery(testServerUrl(), `DROP DATABASE IF EXISTS ${templateDatabase()} WITH (FORCE)`).catch((err: unknown) => {
    process.stderr.write(`could not drop the test template database ${templateDatabase()}: ${String(err)}\n`)
  })
  if (embeddedTestServer() === undefined) return 0
  const { startEmbeddedPostgres } = await import('../../db/embedded-postgres.js')
  // The before script's process is gone: this adopts the server it left running, then stops it.
  const server = await startEmbeddedPostgres({ dataDir, database: 'postgres' })
  await server.stop()
  await rm(stateFile, { force: true })
  return 0
}
