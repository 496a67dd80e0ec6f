// npm run bench: measures ingestion on this machine. Starts the built service (dist/server.js) on a fresh
// database, a bare Fastify route as the ceiling, and drives each with autocannon:
//   - single events, group commit (the default configuration)
//   - single events, one insert per request (INGEST_MAX_BATCH_ROWS=1: the pattern group commit replaces)
//   - batches of 100 events
//   - LiteLLM generic_api batches of 512 StandardLoggingPayloads (messages and response included)
// Prints req/s, events/s, p50/p99 latency and the ratio to the bare route, then checks that every
// acknowledged event is stored. Then the forwarder's drain rate: BENCH_DRAIN_EVENTS (default 50,000) stored
// events sent to the project's Lago simulator (in this process), timed until all are forwarded and checked in
// the simulator. Knobs: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 50), BENCH_GENERIC_CONNECTIONS
// (default 4, the generic_api scenario),
// BENCH_POSTGRES_URL (server URL without database, default postgres://postgres@127.0.0.1:5432),
// BENCH_REDIS_URL (default redis://127.0.0.1:6379).
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import autocannon from 'autocannon'
import { request } from 'undici'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import { migrateToLatest } from '../db/migrator.js'
import { startLagoSimulator } from './lago-simulator/index.js'
import { simulateCall, standardLoggingPayload } from './litellm-simulator/index.js'

const duration = Number(process.env.BENCH_DURATION ?? 10)
const drainEvents = Number(process.env.BENCH_DRAIN_EVENTS ?? 50_000)
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50)
const genericConnections = Number(process.env.BENCH_GENERIC_CONNECTIONS ?? 4)
const postgresUrl = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432'
const redisUrl = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'
const here = import.meta.dirname
const runId = `${Date.now().toString(36)}`

interface Row { scenario: string, reqPerSec: number, eventsPerSec: number, p50: number, p99: number, ok: number, errors: number }

function event (requestId: string): Record<string, unknown> {
  return {
    event_type: 'usage', timestamp: Math.floor(Date.now() / 1000), customer_id: `bench-customer-${requestId.length % 7}`,
    model: 'gpt-4o', provider: 'openai', tokens_input: 100, tokens_output: 150, total_tokens: 250, cost_usd: 0.00375,
    request_id: requestId, api_key_hash: 'key_bench'
  }
}

/**
 * LiteLLM's generic_api batches (512 StandardLoggingPayloads with messages and response, ~1.3 MB) from a few
 * senders, as LiteLLM's workers send them: one batch at a time each. Driven with undici rather than autocannon,
 * which spends longer writing megabyte bodies than the service takes to store them. The batch is built once; each
 * request swaps in its own call ids.
 */
async function driveGeneric (scenario: string, port: number, size: number): Promise<Row> {
  const template = JSON.stringify(Array.from({ length: size }, (_, i) => {
    const payload = standardLoggingPayload(simulateCall({ team: 'bench-team', endUser: `bench-customer-${i % 7}` }))
    return { ...payload, id: `chatcmpl-@@call@@-${i}`, litellm_call_id: `@@call@@-${i}` }
  }))
  const latencies: number[] = []
  let errors = 0
  let n = 0
  const until = performance.now() + duration * 1000
  await Promise.all(Array.from({ length: genericConnections }, async () => {
    while (performance.now() < until) {
      const body = template.replaceAll('@@call@@', `${runId}-generic-${n++}`)
      const started = performance.now()
      const res = await request(`http://127.0.0.1:${port}/webhooks/litellm/generic`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
      await res.body.text()
      if (res.statusCode === 202) latencies.push(performance.now() - started)
      else errors++
    }
  }))
  latencies.sort((a, b) => a - b)
  const ok = latencies.length
  return {
    scenario,
    reqPerSec: ok / duration,
    eventsPerSec: (ok * size) / duration,
    p50: latencies[Math.floor(ok * 0.5)] ?? 0,
    p99: latencies[Math.floor(ok * 0.99)] ?? 0,
    ok,
    errors
  }
}

async function start (file: string, env: Record<string, string>): Promise<{ child: ChildProcess, port: number }> {
  const port = 20000 + Math.floor(Math.random() * 30000)
  const child = spawn(process.execPath, [file], { env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'ignore', 'inherit'] })
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${file.endsWith('server.js') ? '/health/live' : '/'}`)
      await res.body?.cancel()
      return { child, port }
    } catch {
      if (child.exitCode !== null) throw new Error(`${file} exited with ${child.exitCode}`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  throw new Error(`${file} did not start`)
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  child.kill('SIGTERM')
  await once(child, 'exit')
}

async function drive (scenario: string, port: number, path: string, eventsPerRequest: number): Promise<Row> {
  let n = 0
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    duration,
    requests: [{
      method: 'POST',
      path,
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => {
        const prefix = `${runId}-${scenario}-${n++}`
        const body = eventsPerRequest === 1
          ? event(prefix)
          : Array.from({ length: eventsPerRequest }, (_, i) => event(`${prefix}-${i}`))
        return { ...request, body: JSON.stringify(body) }
      }
    }]
  })
  const ok = result['2xx']
  return {
    scenario,
    reqPerSec: result.requests.average,
    eventsPerSec: (ok * eventsPerRequest) / duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok,
    errors: result.non2xx + result.errors + result.timeouts
  }
}

async function countStored (databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  const { rows } = await client.query('SELECT count(*)::int AS n FROM litellm_usage_events')
  await client.end()
  return rows[0].n as number
}

async function withDatabase<T> (name: string, run: (url: string) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: `${postgresUrl}/postgres` })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  try {
    return await run(`${postgresUrl}/${name}`)
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
}

async function service (label: string, extraEnv: Record<string, string>, scenarios: Array<[string, string, number]>): Promise<Row[]> {
  return await withDatabase(`lai_bench_${label}_${runId}`, async (databaseUrl) => {
    const { child, port } = await start(path.join(here, '..', 'server.js'), {
      DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `bench:${runId}:`, LOG_LEVEL: 'warn', ...extraEnv
    })
    try {
      const rows: Row[] = []
      let expected = 0
      for (const [scenario, url, perRequest] of scenarios) {
        const row = url.endsWith('/generic') ? await driveGeneric(scenario, port, perRequest) : await drive(scenario, port, url, perRequest)
        expected += row.ok * perRequest
        rows.push(row)
      }
      const stored = await countStored(databaseUrl)
      // Requests still in flight when autocannon stops are stored without being counted: stored >= acknowledged.
      if (stored < expected) throw new Error(`${label}: ${expected} events acknowledged but only ${stored} stored`)
      return rows
    } finally {
      await stop(child)
    }
  })
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

console.log(`lago-api-integration ingestion benchmark: ${duration} s per scenario, ${connections} connections, node ${process.version}\n`)

const bare = await start(path.join(here, 'bench-bare-server.js'), {})
const ceiling = await drive('bare Fastify route (no database)', bare.port, '/webhooks/litellm', 1)
const ceilingBatch = await drive('bare Fastify route, 100-event body', bare.port, '/webhooks/litellm/batch', 100)
await stop(bare.child)

const grouped = await service('grouped', {}, [
  ['POST /webhooks/litellm, group commit', '/webhooks/litellm', 1],
  ['POST /webhooks/litellm/batch (100 events)', '/webhooks/litellm/batch', 100],
  [`POST /webhooks/litellm/generic (512-call batches, ${genericConnections} senders)`, '/webhooks/litellm/generic', 512]
])
const naive = await service('naive', { INGEST_MAX_BATCH_ROWS: '1', INGEST_MAX_CONCURRENT_WRITES: '20' }, [
  ['POST /webhooks/litellm, one insert per request', '/webhooks/litellm', 1]
])

/** Stores `count` events directly, starts the service against the simulator and times the forwarding. */
async function drain (count: number): Promise<{ seconds: number, batches: number }> {
  return await withDatabase(`lai_bench_drain_${runId}`, async (databaseUrl) => {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 })
    pool.on('error', () => {}) // the database is dropped WITH (FORCE) at the end
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) })
    await migrateToLatest(db)
    await pool.query(`INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, tokens_input, tokens_output,
        total_tokens, cost_usd, "timestamp", source, fingerprint)
      SELECT 'drain-' || g, 'bench-customer-' || (g % 10), 'gpt-4o', 'openai', 100, 150, 250, 0.00375, now() - interval '1 minute',
             'bench', md5(g::text)
        FROM generate_series(1, $1::int) g`, [count])
    const sim = await startLagoSimulator({ apiKey: 'bench-key', requestLogLimit: 10_000 })
    const started = performance.now()
    const { child } = await start(path.join(here, '..', 'server.js'), {
      DATABASE_URL: databaseUrl, REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `bench:${runId}:`, LOG_LEVEL: 'warn',
      LAGO_API_URL: sim.url, LAGO_API_KEY: sim.apiKey
    })
    try {
      for (;;) {
        const { rows } = await pool.query(`SELECT count(*)::int AS n FROM litellm_usage_events WHERE status = 'forwarded'`)
        if (rows[0].n === count) break
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      const seconds = (performance.now() - started) / 1000
      if (sim.state.eventCount !== count) throw new Error(`the simulator holds ${sim.state.eventCount} events, expected ${count}`)
      return { seconds, batches: sim.requests.entries({ route: '/api/v1/events/batch' }).length }
    } finally {
      await stop(child)
      await sim.close()
      await db.destroy()
    }
  })
}

const drained = await drain(drainEvents)

const rows = [ceiling, ceilingBatch, ...grouped, ...naive]
const width = Math.max(...rows.map((r) => r.scenario.length))
console.log(`${'scenario'.padEnd(width)}  ${'req/s'.padStart(9)}  ${'events/s'.padStart(10)}  ${'p50 ms'.padStart(7)}  ${'p99 ms'.padStart(7)}  ${'vs bare'.padStart(7)}  errors`)
for (const r of rows) {
  const base = r.scenario.includes('batch') || r.scenario.includes('100-event') ? ceilingBatch : ceiling
  console.log(`${r.scenario.padEnd(width)}  ${fmt(r.reqPerSec).padStart(9)}  ${fmt(r.eventsPerSec).padStart(10)}  ${fmt(r.p50, 1).padStart(7)}  ${fmt(r.p99, 1).padStart(7)}  ${fmt(r.reqPerSec / base.reqPerSec, 2).padStart(7)}  ${r.errors}`)
}
const groupRate = grouped[0].reqPerSec
const naiveRate = naive[0].reqPerSec
console.log(`\ngroup commit vs one insert per request: ${fmt(groupRate / naiveRate, 2)}x`)
console.log('every acknowledged event was found stored: yes')
console.log(`\nforwarder drain: ${fmt(drainEvents)} stored events into the Lago simulator in ${fmt(drained.seconds, 1)} s ` +
  `(service start included) = ${fmt(drainEvents / drained.seconds)} events/s, ${fmt(drained.batches)} batches; each event in the simulator once: yes`)
