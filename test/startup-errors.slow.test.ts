// A database that cannot be reached or refuses at start: the real server process exits 1 with one readable line
// naming the variable and what failed, without a stack trace or a secret.
import t, { type Test as TapTest } from 'tap'
import pg from 'pg'
import { randomBytes } from 'node:crypto'
import { POSTGRES_URL, REDIS_URL, uid } from './helpers/app.js'
import { freePort, startServer } from './helpers/server-process.js'

const STACK_FRAME = /^\s+at .+\(?.+:\d+:\d+\)?$/m

async function failedStart (t: TapTest, env: Record<string, string>): Promise<string> {
  const server = startServer({ HOST: '127.0.0.1', PORT: String(await freePort()), REDIS_URL, REDIS_KEY_PREFIX: `test:${uid()}:`, ...env })
  t.teardown(() => { server.child.kill('SIGKILL') })
  const [code] = await server.exited
  t.equal(code, 1, 'exits 1')
  const output = server.output()
  t.notMatch(output, STACK_FRAME, 'no stack trace')
  const lines = output.trim().split('\n').filter((l) => /cannot start/.test(l))
  t.equal(lines.length, 1, 'one line says why')
  return lines[0] ?? output
}

t.test('nothing listens on the port: connection refused', async (t) => {
  const port = await freePort()
  const line = await failedStart(t, { DATABASE_URL: `postgres://postgres:s3cret-pw@127.0.0.1:${port}/x` })
  t.match(line, `DATABASE_URL: cannot connect to 127.0.0.1:${port} (connection refused)`)
  t.notMatch(line, /s3cret-pw/, 'the password stays out')
})

t.test('a host that does not exist', async (t) => {
  const line = await failedStart(t, { DATABASE_URL: 'postgres://postgres@no-such-host.invalid:5432/x' })
  t.match(line, /DATABASE_URL: cannot connect to no-such-host\.invalid:5432 \((host not found|host name lookup failed)\)/)
})

t.test('a user without permission to create the database', async (t) => {
  const admin = new pg.Client({ connectionString: `${POSTGRES_URL}/postgres` })
  await admin.connect()
  t.teardown(() => admin.end())
  const role = `lai_noperm_${randomBytes(4).toString('hex')}`
  await admin.query(`CREATE ROLE ${role} LOGIN NOCREATEDB PASSWORD 'pw-${role}'`)
  t.teardown(() => admin.query(`DROP ROLE IF EXISTS ${role}`))
  const url = new URL(POSTGRES_URL)
  url.username = role
  url.password = `pw-${role}`
  url.pathname = `/${role}_db`
  const line = await failedStart(t, { DATABASE_URL: url.toString() })
  t.match(line, `DATABASE_URL: user "${role}" lacks a permission on ${url.hostname}:${url.port || 5432}: permission denied to create database`)
  t.notMatch(line, `pw-${role}`)
})

t.test('a database that does not exist, with RUN_MIGRATIONS=false (nothing creates it)', async (t) => {
  const name = `lai_missing_${randomBytes(4).toString('hex')}`
  const url = new URL(POSTGRES_URL)
  url.pathname = `/${name}`
  const line = await failedStart(t, { DATABASE_URL: url.toString(), RUN_MIGRATIONS: 'false' })
  t.match(line, `DATABASE_URL: database "${name}" does not exist on ${url.hostname}:${url.port || 5432}`)
})
