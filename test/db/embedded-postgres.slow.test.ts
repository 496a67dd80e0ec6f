// The service with DATABASE_URL unset, as `npm start` runs it on a machine with nothing installed: the embedded
// PostgreSQL initialises DATA_DIR once, is reused, stops with the service, survives kill -9 (of the service alone,
// and of the service and PostgreSQL together) without losing an acknowledged event, and its failures are one line.
import { mkdtemp, rm, chmod, mkdir, stat, readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import pg from 'pg'
import { Pool } from 'undici'
import { REDIS_URL, seedEvent, uid } from '../helpers/app.js'
import { freePort, startServer, waitFor, type ServerProcess } from '../helpers/server-process.js'
import { startEmbeddedPostgres, unprivilegedAccount } from '../../db/embedded-postgres.js'

// Seven service starts (one initdb, two crash recoveries) on a shared machine: more than tap's 300 s per file.
t.setTimeout(900_000)

const base = await mkdtemp(path.join(os.tmpdir(), 'lai-embedded-'))
await chmod(base, 0o755) // as root, PostgreSQL runs as another account that must reach DATA_DIR
const dataDir = path.join(base, 'data')
t.teardown(() => rm(base, { recursive: true, force: true }))

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }
const postmasterPid = async (): Promise<number> => Number((await readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[0])

interface Running extends ServerProcess { port: number, client: Pool }
async function service (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string> = {}): Promise<Running> {
  const port = await freePort()
  const server = startServer({ HOST: '127.0.0.1', PORT: String(port), DATA_DIR: dataDir, REDIS_URL, REDIS_KEY_PREFIX: `test:${uid()}:`, LOG_LEVEL: 'info', ...env })
  t.teardown(() => { server.child.kill('SIGKILL') })
  await waitFor(() => /Server listening/.test(server.output()) || server.child.exitCode !== null, 'the service to listen', 120_000)
  if (server.child.exitCode !== null) throw new Error(`the service exited: ${server.output()}`)
  const client = new Pool(`http://127.0.0.1:${port}`, { connections: 20 })
  t.teardown(() => client.destroy())
  return { ...server, port, client }
}

async function post (client: Pool, event: Record<string, unknown>): Promise<number> {
  const res = await client.request({ method: 'POST', path: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) })
  await res.body.dump()
  return res.statusCode
}

/** The request ids stored for a customer, read straight from the embedded server (joined, or started and stopped). */
async function storedIds (customer: string): Promise<Set<string>> {
  const server = await startEmbeddedPostgres({ dataDir })
  const db = new pg.Client({ connectionString: server.url })
  await db.connect()
  try {
    const { rows } = await db.query<{ request_id: string }>('SELECT request_id FROM litellm_usage_events WHERE customer_external_id = $1', [customer])
    return new Set(rows.map((r) => r.request_id))
  } finally {
    await db.end()
    await server.stop()
  }
}

/** 20 senders until stopped; what got a 202 is acknowledged (so it must survive anything). */
function load (client: Pool, customer: string): { acknowledged: string[], stop: () => Promise<void> } {
  let stopped = false
  const acknowledged: string[] = []
  const sender = async (worker: number): Promise<void> => {
    for (let i = 0; !stopped; i++) { // eslint-disable-line no-unmodified-loop-condition -- set by stop()
      const event = seedEvent({ customer_id: customer, request_id: `${customer}-${worker}-${i}` })
      try {
        if (await post(client, event) === 202) acknowledged.push(event.request_id as string)
      } catch {
        return // the service is gone
      }
    }
  }
  const senders = Array.from({ length: 20 }, (_, w) => sender(w))
  return { acknowledged, stop: async () => { stopped = true; await Promise.all(senders) } }
}

const seed = seedEvent({ request_id: uid('embedded-seed') })

t.test('first start initialises DATA_DIR, says so, serves, and stops PostgreSQL on SIGTERM', async (t) => {
  const s = await service(t)
  t.match(s.output(), 'initialising a new PostgreSQL cluster (first start)')
  t.match(s.output(), /database: embedded PostgreSQL 17\.\d+ in /)
  const health = await (await s.client.request({ method: 'GET', path: '/health' })).body.json() as { database: { type: string, description: string } }
  t.equal(health.database.type, 'embedded', '/health says embedded')
  t.equal(health.database.description, `embedded PostgreSQL ${health.database.description.split(' ')[2]} in ${dataDir}`)
  t.equal(await post(s.client, seed), 202, 'the seed event is accepted')

  const pgPid = await postmasterPid()
  const port = Number((await readFile(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8')).split('\n')[3])
  t.not(port, 5432, 'never the port of a PostgreSQL already on 5432')
  if (process.getuid?.() === 0) {
    const account = unprivilegedAccount(await readFile('/etc/passwd', 'utf8'))
    t.equal((await stat(path.join(dataDir, 'postgres'))).uid, account?.uid, `as root, PostgreSQL runs as ${account?.name}, which owns the cluster`)
  }
  s.child.kill('SIGTERM')
  const [code] = await s.exited
  t.equal(code, 0, 'clean exit')
  t.notOk(alive(pgPid), 'PostgreSQL stopped with the service')
})

t.test('a later start reuses the data: the event is still there', async (t) => {
  const s = await service(t)
  t.notMatch(s.output(), 'initialising', 'no second initdb')
  t.equal(await post(s.client, seed), 200, 'the same event again is a duplicate: it survived the restart')
  s.child.kill('SIGINT')
  t.equal((await s.exited)[0], 0, 'SIGINT (Ctrl-C) stops it cleanly too')
})

t.test('kill -9 of the service under load: the next start adopts PostgreSQL, every acknowledged event is there', async (t) => {
  const s = await service(t)
  const customer = uid('kill-service')
  const traffic = load(s.client, customer)
  await waitFor(() => traffic.acknowledged.length >= 300, 'some acknowledged traffic')
  s.child.kill('SIGKILL')
  await s.exited
  await traffic.stop()
  const orphan = await postmasterPid()
  t.ok(alive(orphan), 'PostgreSQL outlived the killed service (its own process group)')

  const next = await service(t)
  t.match(next.output(), `adopting the PostgreSQL server (pid ${orphan})`)
  const stored = await storedIds(customer)
  t.equal(traffic.acknowledged.filter((id) => !stored.has(id)).length, 0, `all ${traffic.acknowledged.length} acknowledged events are stored`)
  next.child.kill('SIGTERM')
  t.equal((await next.exited)[0], 0)
  t.notOk(alive(orphan), 'the adopted PostgreSQL stops with the service that adopted it')
})

t.test('kill -9 of the service and PostgreSQL together under load: the stale postmaster.pid does not stop the next start', async (t) => {
  const s = await service(t)
  const customer = uid('kill-all')
  const traffic = load(s.client, customer)
  await waitFor(() => traffic.acknowledged.length >= 300, 'some acknowledged traffic')
  const pgPid = await postmasterPid()
  s.child.kill('SIGKILL')
  process.kill(-pgPid, 'SIGKILL') // the postmaster and its backends: a crash without shutdown checkpoint
  await s.exited
  await traffic.stop()
  await waitFor(() => !alive(pgPid), 'PostgreSQL to be gone')
  t.equal(await postmasterPid(), pgPid, 'a stale postmaster.pid is left behind')

  const next = await service(t)
  const health = await (await next.client.request({ method: 'GET', path: '/health/ready' })).body.json() as { status: string }
  t.equal(health.status, 'ready', 'back after crash recovery')
  const stored = await storedIds(customer)
  t.equal(traffic.acknowledged.filter((id) => !stored.has(id)).length, 0, `all ${traffic.acknowledged.length} acknowledged events are stored`)
  next.child.kill('SIGTERM')
  t.equal((await next.exited)[0], 0)
})

t.test('a wrong password for a PostgreSQL that checks them: one line, no password', async (t) => {
  const server = await startEmbeddedPostgres({ dataDir })
  t.teardown(() => server.stop())
  const s = startServer({ HOST: '127.0.0.1', PORT: String(await freePort()), REDIS_URL, DATABASE_URL: `postgres://postgres:not-the-password@127.0.0.1:${server.port}/lago_integration` })
  t.teardown(() => { s.child.kill('SIGKILL') })
  t.equal((await s.exited)[0], 1)
  t.match(s.output(), `lago-api-integration cannot start. DATABASE_URL: PostgreSQL at 127.0.0.1:${server.port} refused the password of user "postgres"`)
  t.notMatch(s.output(), 'not-the-password')
  t.notMatch(s.output(), /^\s+at /m, 'no stack trace')
})

t.test('a DATA_DIR that cannot be written: one line naming DATA_DIR', async (t) => {
  // A directory this process may not write: as root, the service runs as nobody (root may write anywhere).
  const locked = path.join(base, 'locked')
  await mkdir(locked)
  await chmod(locked, 0o555)
  const asRoot = process.getuid?.() === 0
  const nobody = asRoot ? unprivilegedAccount('nobody:x:65534:65534::/:/bin/false') : undefined
  const s = startServer({ HOST: '127.0.0.1', PORT: String(await freePort()), REDIS_URL, DATA_DIR: path.join(locked, 'data') },
    nobody !== undefined ? { uid: nobody.uid, gid: nobody.gid, cwd: base } : {})
  t.teardown(() => { s.child.kill('SIGKILL') })
  t.equal((await s.exited)[0], 1)
  t.match(s.output(), `lago-api-integration cannot start. DATA_DIR: ${path.join(locked, 'data')} is not writable (permission denied)`)
  t.notMatch(s.output(), /^\s+at /m, 'no stack trace')
})
