// The year-of-events scenario of npm run bench (opt-in: `npm run bench -- year`). On a database of its own, measures
// ingestion, the forwarder's claim, GET /webhooks/stats, aggregate_customer_usage for one customer over 30 days and
// the usage APIs first on an empty table, then after seeding BENCH_YEAR_ROWS events (default 20,000,000) spread over
// the last 12 months with generate_series (5,000 customers, 50 models; 98.4 % forwarded, 1 % not_billable, 0.4 %
// unmapped, 0.2 % dead), and reports each as a ratio to the empty table (goal ≤ 2×).
import type { ChildProcess } from 'node:child_process'
import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { Database } from '../../db/database.js'
import { ensureMonthlyPartitions } from '../../db/partitions.js'
import { claimDueEvents, release } from '../../plugins/app/forwarder/repository.js'
import type { Figure, Service } from '../bench.js'
import { load } from './load.js'

export interface YearContext {
  postgresUrl: string
  redisUrl: string
  runId: string
  serverJs: string
  start: (file: string, env: Record<string, string>, readyPath?: string) => Promise<Service & { ms: number }>
  stop: (child: ChildProcess) => Promise<void>
  migrate: (databaseUrl: string) => Promise<void>
}

const API_KEY = 'bench-year-key'
const CHUNK = 1_000_000

interface Timings { ingestReqPerSec: number, ingestP99: number, claim: number, stats: number, aggregate: number, customerUsage: number, overview: number }

/** Median of `runs` timings of `fn`, in ms (one warm-up call first, unless `warm` is false). */
async function median (runs: number, fn: () => Promise<unknown>, warm = true): Promise<number> {
  if (warm) await fn()
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const started = performance.now()
    await fn()
    times.push(performance.now() - started)
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]
}

async function get (url: string): Promise<void> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${API_KEY}` } })
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`)
  await res.arrayBuffer()
}

async function measure (ctx: YearContext, databaseUrl: string, pool: pg.Pool, db: Kysely<Database>, label: string): Promise<Timings> {
  const service = await ctx.start(ctx.serverJs, {
    DATABASE_URL: databaseUrl, REDIS_URL: ctx.redisUrl, REDIS_KEY_PREFIX: `bench:${ctx.runId}:`, API_KEYS: API_KEY, FORWARDER_ENABLED: 'false'
  })
  try {
    const seconds = Number(process.env.BENCH_YEAR_DURATION ?? 5)
    const body = JSON.stringify({
      event_type: 'usage',
      timestamp: Math.floor(Date.now() / 1000),
      customer_id: 'customer-42',
      model: 'model-7',
      provider: 'openai',
      tokens_input: 100,
      tokens_output: 150,
      total_tokens: 250,
      cost_usd: 0.00375,
      request_id: '@@id@@',
      api_key_hash: 'key_bench'
    })
    const ingest = await load({ url: service.url, path: '/webhooks/litellm', body, connections: 100, seconds, idPrefix: `${ctx.runId}-year-${label}` })
    // The events just ingested are due: a claim of 100 finds them, whatever lies behind them in the table.
    const claim = await median(9, async () => {
      const claimed = await claimDueEvents(db, { organization: 'default', worker: 'bench', limit: 100, leaseMs: 60_000, metricCode: 'llm_usage' })
      if (claimed.length === 0) throw new Error('nothing to claim')
      await release(db, claimed)
    })
    const stats = await median(9, async () => await get(`${service.url}/webhooks/stats`))
    const aggregate = await median(9, async () => await pool.query('SELECT * FROM aggregate_customer_usage($1, now() - interval \'30 days\', now())', ['customer-42']))
    const from = new Date(Date.now() - 30 * 86_400_000).toISOString()
    const to = new Date().toISOString()
    const customerUsage = await median(9, async () => await get(`${service.url}/api/customers/customer-42/usage?from=${from}&to=${to}`))
    // One call: on a year of events it reads a month of them (seconds to minutes).
    const overview = await median(1, async () => await get(`${service.url}/api/usage?from=${from}&to=${to}`), false)
    return { ingestReqPerSec: ingest.reqPerSec, ingestP99: ingest.p99, claim, stats, aggregate, customerUsage, overview }
  } finally {
    await ctx.stop(service.child)
  }
}

async function seed (pool: pg.Pool, rows: number): Promise<void> {
  for (let from = 1; from <= rows; from += CHUNK) {
    const to = Math.min(rows, from + CHUNK - 1)
    const started = performance.now()
    // Each event with its dedupe key, as ingestion stores them.
    await pool.query(`
      WITH stored AS (
      INSERT INTO litellm_usage_events (request_id, customer_external_id, model, provider, tokens_input, tokens_output, total_tokens,
        cost_usd, "timestamp", received_at, source, fingerprint, status, attempts, processed_at, last_error)
      SELECT 'year-' || g, 'customer-' || (g % 5000), 'model-' || (g % 50), 'openai', 100 + g % 900, 50 + g % 500,
             150 + g % 900 + g % 500, (g % 1000) / 100000.0, ts, ts + interval '1 second',
             CASE WHEN g % 3 = 0 THEN 'generic_api' ELSE 'litellm' END, md5(g::text),
             CASE WHEN g % 500 = 0 THEN 'dead' WHEN g % 250 = 0 THEN 'unmapped' WHEN g % 100 = 0 THEN 'not_billable' ELSE 'forwarded' END,
             1, ts + interval '2 seconds',
             CASE WHEN g % 250 = 0 AND g % 500 <> 0 THEN '{"message": "no customer mapping"}'::jsonb END
        FROM (SELECT g, now() - interval '1 hour' - (($3::float8 - g) / $3::float8) * interval '365 days' AS ts
                FROM generate_series($1::bigint, $2::bigint) g) s
      RETURNING organization_id, request_id, id, fingerprint
      )
      INSERT INTO usage_event_keys (organization_id, request_id, event_id, fingerprint) SELECT * FROM stored`, [from, to, rows])
    console.log(`  seeded ${to.toLocaleString('en-US')} of ${rows.toLocaleString('en-US')} (${((performance.now() - started) / 1000).toFixed(1)} s for this million)`)
  }
  const started = performance.now()
  await pool.query('VACUUM ANALYZE litellm_usage_events, usage_event_keys')
  console.log(`  VACUUM ANALYZE: ${((performance.now() - started) / 1000).toFixed(1)} s`)
}

export async function yearScenario (ctx: YearContext): Promise<Figure[]> {
  const rows = Number(process.env.BENCH_YEAR_ROWS ?? 20_000_000)
  const name = `lai_bench_year_${ctx.runId}`
  const admin = new pg.Client({ connectionString: `${ctx.postgresUrl}/postgres` })
  await admin.connect()
  await admin.query(`CREATE DATABASE ${name}`)
  const databaseUrl = `${ctx.postgresUrl}/${name}`
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 })
  pool.on('error', () => {}) // dropped WITH (FORCE) at the end
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  try {
    await ctx.migrate(databaseUrl)
    console.log('a year of events: the empty table first')
    const empty = await measure(ctx, databaseUrl, pool, db, 'empty')
    console.log(`seeding ${rows.toLocaleString('en-US')} events over 12 months`)
    const seedStarted = performance.now()
    // The months of the year behind, as a deployment running for a year has them (the service creates them ahead).
    await ensureMonthlyPartitions(db, 'litellm_usage_events', new Date(), 2, new Date(Date.now() - 366 * 86_400_000))
    await seed(pool, rows)
    const seedSeconds = (performance.now() - seedStarted) / 1000
    const year = await measure(ctx, databaseUrl, pool, db, 'year')
    const label = `${(rows / 1e6).toLocaleString('en-US')}M events (seeded in ${seedSeconds.toFixed(0)} s)`
    const ms = (scenario: string, a: number, b: number, goal = '≤ 2× empty'): Figure =>
      ({ scenario: `${scenario}, ${label}`, value: b, unit: 'ms', reference: 'empty table', referenceValue: a, ratio: b / a, goal, met: goal.startsWith('≤ 2') ? b / a <= 2 : undefined })
    return [
      {
        scenario: `POST /webhooks/litellm, ${label}`,
        value: year.ingestReqPerSec,
        unit: 'req/s',
        reference: 'empty table',
        referenceValue: empty.ingestReqPerSec,
        ratio: year.ingestReqPerSec / empty.ingestReqPerSec,
        goal: '≥ 0.5× empty',
        met: year.ingestReqPerSec / empty.ingestReqPerSec >= 0.5,
        p99: year.ingestP99
      },
      ms('forwarder claim of 100 (median)', empty.claim, year.claim),
      ms('GET /webhooks/stats (median)', empty.stats, year.stats),
      ms('aggregate_customer_usage, one customer, 30 days (median)', empty.aggregate, year.aggregate),
      ms('GET /api/customers/{id}/usage, 30 days (median)', empty.customerUsage, year.customerUsage),
      // Every customer's 30 days: it reads a month of events (1/12 of the table), so it grows with the traffic in
      // the range, not with the table: reported, not held to 2×.
      ms('GET /api/usage, all customers, 30 days (median)', empty.overview, year.overview, 'grows with the range')
    ]
  } finally {
    await db.destroy()
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await admin.end()
  }
}
