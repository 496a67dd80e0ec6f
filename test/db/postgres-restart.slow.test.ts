import { spawn, type ChildProcess } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { Pool } from 'undici'
import pg from 'pg'
import { REDIS_URL, runTypeScript, seedEvent, uid } from '../helpers/app.js'
import { FAST_FORWARDING, until } from '../helpers/forwarding.js'
import { simulator } from '../helpers/lago.js'
import { freePort } from '../../scripts/free-port.js'
import { PrivatePostgres, privatePostgresOrSkip } from '../helpers/private-postgres.js'

// The operator's scenario of issue 9: a private PostgreSQL restarted (pg_ctl restart -m fast) and crashed
// (pg_ctl stop -m immediate, started again at least 10 s later, as in the issue) under steady load from 20 concurrent senders, with the service
// as a real process. The service must stay up, answer the gap with fast 503s and Retry-After, lose no
// acknowledged event, report the outage on /health/ready, and resume ingestion and forwarding by itself.

const root = path.join(import.meta.dirname, '..', '..')
const SENDERS = 20
/** A request is a hang when it takes longer than this (PostgreSQL down must mean a fast 503). */
const REQUEST_BOUND_MS = 10_000
/** How long the crashed server stays down: the issue's "start 10 s later". */
const CRASH_GAP_MS = 10_000
/**
 * Senders stop after this long whatever happens. A bound in time, not in requests: 503s come back in a millisecond
 * or two, so the 10 s crash gap alone took up to 3,100 requests per sender, and a cap in requests once stopped the
 * load before PostgreSQL was back (CI, stop 16).
 */
const SENDER_DEADLINE_MS = 180_000

// Without the server binaries (or, as root, runuser and a postgres user) the file is skipped, saying why; under
// CI=true that is a failure instead (test/helpers/private-postgres.ts).
if (await privatePostgresOrSkip(t)) {
  t.test('PostgreSQL restarts and crashes under load', async (t) => {
    const postgres = await PrivatePostgres.start()
    t.teardown(() => postgres.destroy())
    const sim = await simulator(t, { recordEventBodies: true })
    const databaseUrl = `${postgres.url}/lago_restart`
    const port = await freePort()
    let output = ''
    const child: ChildProcess = spawn(process.execPath, runTypeScript(path.join(root, 'server.ts')), {
      cwd: os.tmpdir(),
      env: {
        PATH: process.env.PATH,
        FASTIFY_AUTOLOAD_TYPESCRIPT: '1',
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        DATABASE_URL: databaseUrl,
        REDIS_URL,
        REDIS_KEY_PREFIX: `test:${uid()}:`,
        LAGO_API_URL: sim.url,
        LAGO_API_KEY: sim.apiKey,
        ...FAST_FORWARDING,
        FORWARDER_LEASE_MS: '5000'
      },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
    t.teardown(() => { child.kill('SIGKILL') })
    const base = `http://127.0.0.1:${port}`
    await until(async () => {
      try { return (await fetch(`${base}/health/ready`)).status === 200 } catch { return false }
    }, 'the service to be ready', 60_000)

    const query = async (text: string, params: unknown[]): Promise<pg.QueryResult> => {
      // A client of the test's own, reconnected after each disruption.
      const client = new pg.Client({ connectionString: databaseUrl })
      await client.connect()
      try { return await client.query(text, params) } finally { await client.end() }
    }

    /** Waits for a condition, failing at once (with the service's last words) if the service has exited. */
    const alive = (check: () => boolean | Promise<boolean>) => async (): Promise<boolean> => {
      if (child.exitCode !== null) throw new Error(`the service exited (${child.exitCode}): ${output.split('\n').slice(-6).join('\n')}`)
      return await check()
    }

    const scenario = (name: string, disrupt: (marks: { refusedSoFar: () => number }) => Promise<void>) => t.test(name, async (t) => {
      const run = uid(name.replace(/\W+/g, '-'))
      const customer = `${run}-customer`
      const client = new Pool(base, { connections: SENDERS, headersTimeout: REQUEST_BOUND_MS, bodyTimeout: REQUEST_BOUND_MS })
      t.teardown(() => client.destroy())
      const acknowledged: string[] = []
      const sent: string[] = []
      const refused: Array<{ id: string, retryAfter: string | undefined, unknown: boolean }> = []
      const otherStatuses: Array<{ status: number, body: string }> = []
      const failures: string[] = []
      const slowest = { ms: 0 }
      let stopped = false
      const deadline = Date.now() + SENDER_DEADLINE_MS
      const sender = async (worker: number): Promise<void> => {
        for (let i = 0; !stopped && Date.now() < deadline; i++) { // eslint-disable-line no-unmodified-loop-condition -- set by the test after the load
          const event = seedEvent({ customer_id: customer, request_id: `${run}-${worker}-${i}`, timestamp: Math.floor(Date.now() / 1000) })
          const id = event.request_id as string
          sent.push(id)
          const started = performance.now()
          try {
            const res = await client.request({ method: 'POST', path: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) })
            const text = await res.body.text()
            if (res.statusCode === 202 || res.statusCode === 200) acknowledged.push(id)
            else if (res.statusCode === 503) {
              const retryAfter = res.headers['retry-after']
              refused.push({ id, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined, unknown: /unknown/.test(text) })
            } else otherStatuses.push({ status: res.statusCode, body: text.slice(0, 200) })
          } catch (err) {
            failures.push(`${id}: ${(err as Error).message}`)
            if (child.exitCode !== null) return
          }
          slowest.ms = Math.max(slowest.ms, performance.now() - started)
        }
      }
      const readiness: number[] = []
      let watching = true
      const watchReadiness = (async () => {
        while (watching) { // eslint-disable-line no-unmodified-loop-condition -- set by the test
          try {
            const res = await client.request({ method: 'GET', path: '/health/ready' })
            await res.body.dump()
            if (readiness[readiness.length - 1] !== res.statusCode) readiness.push(res.statusCode)
          } catch { readiness.push(0) }
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      })()

      const senders = Array.from({ length: SENDERS }, (_, w) => sender(w))
      await until(alive(() => acknowledged.length >= 300), 'steady load before the disruption', 60_000)
      await disrupt({ refusedSoFar: () => refused.length })
      const ackedBeforeRecovery = acknowledged.length
      await until(alive(() => acknowledged.length >= ackedBeforeRecovery + 300), 'new events accepted after PostgreSQL is back', 60_000)
      await until(alive(() => readiness[readiness.length - 1] === 200), '/health/ready to answer 200 again', 30_000)
      stopped = true
      await Promise.all(senders)
      watching = false
      await watchReadiness

      t.equal(child.exitCode, null, 'the process is alive')
      t.notMatch(output, /shutting down after an unexpected error/, 'it never gave up')
      t.equal((await fetch(`${base}/health/live`)).status, 200)

      // Every acknowledged event is stored, each once; events answered "outcome unknown" may be stored too.
      const { rows } = await query('SELECT request_id, count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1 GROUP BY request_id', [customer])
      const stored = new Map(rows.map((r: { request_id: string, n: number }) => [r.request_id, r.n]))
      const lost = acknowledged.filter((id) => !stored.has(id))
      t.equal(lost.length, 0, `0 of ${acknowledged.length} acknowledged events lost${lost.length > 0 ? `: ${lost.slice(0, 5).join(', ')}` : ''}`)
      t.equal([...stored.values()].filter((n) => n > 1).length, 0, 'none stored twice')
      const storedNotAcknowledged = [...stored.keys()].filter((id) => !acknowledged.includes(id))
      const unknownIds = new Set(refused.filter((r) => r.unknown).map((r) => r.id))
      t.ok(storedNotAcknowledged.every((id) => unknownIds.has(id)),
        `an event stored without a 2xx was answered "outcome unknown" (${storedNotAcknowledged.length} such)`)

      t.ok(refused.length > 0, `requests during the gap were refused: ${refused.length} 503s`)
      t.equal(refused.filter((r) => r.retryAfter === undefined || !(Number(r.retryAfter) > 0)).length, 0, 'every 503 has Retry-After')
      t.same(otherStatuses, [], 'no other status than 2xx and the deliberate 503')
      t.same(failures, [], 'every request answered (none hung past the bound, no connection refused)')
      t.ok(slowest.ms < REQUEST_BOUND_MS, `slowest request ${Math.round(slowest.ms)} ms`)
      const down = readiness.indexOf(503)
      t.ok(down >= 0 && readiness.indexOf(200, down) > down, `/health/ready went 503 then 200: ${JSON.stringify(readiness)}`)

      // The forwarder catches up: every stored event reaches Lago exactly once.
      const forwarded = async (): Promise<number> => (await query('SELECT count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1 AND status = \'forwarded\'', [customer])).rows[0].n
      await until(async () => await forwarded() === stored.size, `all ${stored.size} stored events forwarded`, 120_000)
      const inLago = new Map<string, number>()
      for (const e of sim.state.storedEvents()) if (stored.has(e.transaction_id)) inLago.set(e.transaction_id, (inLago.get(e.transaction_id) ?? 0) + 1)
      t.equal(inLago.size, stored.size, 'every stored event is in Lago')
      t.equal([...inLago.values()].filter((n) => n > 1).length, 0, 'none billed twice')
      const sends = new Map<string, number>()
      for (const entry of sim.requests.entries({ route: '/api/v1/events/batch' })) {
        for (const text of entry.events ?? []) {
          const id = JSON.parse(text).transaction_id as string
          if (stored.has(id)) sends.set(id, (sends.get(id) ?? 0) + 1)
        }
      }
      const resent = [...sends.values()].filter((n) => n > 1).length

      const figures = {
        requests: sent.length,
        acknowledged: acknowledged.length,
        stored: stored.size,
        lost: lost.length,
        stored_twice: [...stored.values()].filter((n) => n > 1).length,
        billed_twice_in_lago: [...inLago.values()].filter((n) => n > 1).length,
        sent_to_lago_more_than_once: resent,
        deliberate_503: refused.length,
        deliberate_503_outcome_unknown: unknownIds.size,
        stored_after_outcome_unknown: storedNotAcknowledged.length,
        other_5xx: otherStatuses.filter((s) => s.status >= 500).length,
        unanswered: failures.length,
        slowest_request_ms: Math.round(slowest.ms),
        readiness
      }
      t.comment(`figures: ${JSON.stringify(figures)}`)
    })

    await scenario('pg_ctl restart -m fast', async () => {
      await postgres.ctl('restart', 'fast')
    })

    await scenario(`pg_ctl stop -m immediate, start ${CRASH_GAP_MS / 1000} s later`, async ({ refusedSoFar }) => {
      await postgres.ctl('stop', 'immediate')
      const stoppedAt = Date.now()
      // The gap lasts CRASH_GAP_MS, and at least until the load has seen it and /health/ready reports it.
      const before = refusedSoFar()
      await until(alive(async () => {
        const ready = await fetch(`${base}/health/ready`).then((r) => r.status, () => 0)
        return ready === 503 && refusedSoFar() >= before + 200
      }), 'the outage to be seen by the load and by /health/ready', 30_000)
      await until(alive(() => Date.now() - stoppedAt >= CRASH_GAP_MS), `${CRASH_GAP_MS / 1000} s since the crash`, CRASH_GAP_MS + 30_000)
      t.comment(`PostgreSQL down for ${Date.now() - stoppedAt} ms, ${refusedSoFar() - before} requests refused meanwhile`)
      await postgres.ctl('start')
    })

    const warnings = output.split('\n').filter((line) => /"level":(40|50)/.test(line))
    t.ok(warnings.length < 60, `the outages are logged in a few lines, not one per refused request (${warnings.length} warnings and errors)`)
    t.comment(`log lines at warn or above: ${warnings.length}: ${JSON.stringify(warnings.map((w) => (JSON.parse(w) as { msg: string }).msg.slice(0, 90)))}`)
  })
}
