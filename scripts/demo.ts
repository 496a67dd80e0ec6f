// The whole story with nothing installed:
//   npm run demo                       -> about 20 s of traffic, then a summary, then everything stops
//   npm run demo -- --duration 60      -> longer
//   npm run demo -- --serve            -> keeps the service and the Lago simulator running to explore (Ctrl-C stops)
// Starts the service on an embedded PostgreSQL (a fresh DATA_DIR under the system's temp directory unless
// --data-dir), the project's Lago simulator, and LiteLLM-like traffic: several customers and models, every
// LiteLLM format the service takes (seed JSON, batch, generic_api, lago callback, openmeter CloudEvents), a few
// re-sent and bad items, and one short Lago outage. --json <file> also writes the figures and what was sent.
import { randomUUID } from 'node:crypto'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { buildApp } from '../app.js'
import { loadConfig } from '../plugins/external/config.js'
import { StartupError } from '../db/startup-errors.js'
import { stopEmbeddedServers } from '../db/embedded-postgres.js'
import { openDatabase } from '../db/connection.js'
import { startLagoSimulator } from './lago-simulator/index.js'
import { simulateCall, standardLoggingPayload } from './litellm-simulator/index.js'

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '20' },
    serve: { type: 'boolean', default: false },
    port: { type: 'string' },
    'data-dir': { type: 'string' },
    json: { type: 'string' },
    seed: { type: 'string', default: '42' }
  }
})
const durationMs = Number(args.duration) * 1000
if (!Number.isFinite(durationMs) || durationMs <= 0) {
  process.stderr.write(`--duration must be a number of seconds, got "${args.duration}"\n`)
  process.exit(2)
}

const INGEST_TOKEN = 'demo-ingest-token'
const ADMIN_KEY = 'demo-admin-key'
const CUSTOMERS = ['acme', 'globex', 'initech', 'umbrella']
const MODELS = [
  { model: 'gpt-4o', provider: 'openai', inputPrice: '0.0000025', outputPrice: '0.00001' },
  { model: 'gpt-4o-mini', provider: 'openai', inputPrice: '0.00000015', outputPrice: '0.0000006' },
  { model: 'claude-3-5-sonnet', provider: 'anthropic', inputPrice: '0.000003', outputPrice: '0.000015' },
  { model: 'gemini-1.5-pro', provider: 'vertex_ai', inputPrice: '0.00000125', outputPrice: '0.000005' }
]
type Format = 'seed' | 'batch' | 'generic' | 'lago' | 'openmeter'
const FORMATS: Format[] = ['seed', 'batch', 'generic', 'lago', 'openmeter']

/** Seeded PRNG (mulberry32): the same traffic for the same --seed. */
let state = Number(args.seed) >>> 0
const random = (): number => {
  state = (state + 0x6D2B79F5) >>> 0
  let t = state
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]

/** Cost in USD with up to 10 decimals, computed exactly from integer micro-micro units (no float sums). */
function costOf (model: typeof MODELS[number], input: number, output: number): string {
  const units = (price: string): bigint => BigInt(price.replace('.', '').replace(/^0+/, '') || '0') * 10n ** BigInt(10 - (price.split('.')[1] ?? '').length)
  const total = units(model.inputPrice) * BigInt(input) + units(model.outputPrice) * BigInt(output)
  const whole = total / 10n ** 10n
  const fraction = (total % 10n ** 10n).toString().padStart(10, '0').replace(/0+$/, '')
  return fraction === '' ? whole.toString() : `${whole}.${fraction}`
}

/** One LLM call as the demo made it up: what a correct system must bill. */
interface Call { id: string, customer: string, model: string, provider: string, input: number, output: number, cost: string }

function newCall (): Call {
  const m = pick(MODELS)
  const input = 50 + Math.floor(random() * 2000)
  const output = 20 + Math.floor(random() * 800)
  return { id: randomUUID(), customer: pick(CUSTOMERS), model: m.model, provider: m.provider, input, output, cost: costOf(m, input, output) }
}

/** The body each LiteLLM format sends for these calls. */
function bodyFor (format: Format, calls: Call[]): { path: string, contentType: string, body: unknown } {
  const now = Math.floor(Date.now() / 1000)
  const seedEvent = (c: Call) => ({ event_type: 'usage', timestamp: now, customer_id: c.customer, model: c.model, provider: c.provider, tokens_input: c.input, tokens_output: c.output, total_tokens: c.input + c.output, cost_usd: c.cost, request_id: c.id, api_key_hash: `key_${c.customer}` })
  switch (format) {
    case 'seed': return { path: '/webhooks/litellm', contentType: 'application/json', body: seedEvent(calls[0]) }
    case 'batch': return { path: '/webhooks/litellm/batch', contentType: 'application/json', body: calls.map(seedEvent) }
    case 'generic': return {
      path: '/webhooks/litellm/generic',
      contentType: 'application/json',
      body: calls.map((c) => {
        const payload = standardLoggingPayload(simulateCall({ endUser: c.customer, model: c.model, provider: c.provider, promptTokens: c.input, completionTokens: c.output, cost: Number(c.cost), startMicros: Date.now() * 1000 }))
        return { ...payload, id: c.id }
      })
    }
    case 'lago': return {
      path: '/api/v1/events',
      contentType: 'application/json',
      body: { event: { transaction_id: calls[0].id, external_subscription_id: calls[0].customer, code: 'litellm_usage', properties: { model: calls[0].model, response_cost: Number(calls[0].cost), prompt_tokens: calls[0].input, completion_tokens: calls[0].output, total_tokens: calls[0].input + calls[0].output } } }
    }
    case 'openmeter': return {
      path: '/api/v1/events',
      contentType: 'application/cloudevents+json',
      body: { specversion: '1.0', type: 'litellm_tokens', id: calls[0].id, time: new Date().toISOString(), subject: calls[0].customer, source: 'litellm-proxy', data: { model: calls[0].model, cost: Number(calls[0].cost), prompt_tokens: calls[0].input, completion_tokens: calls[0].output, total_tokens: calls[0].input + calls[0].output } }
    }
  }
}

async function freePort (preferred: number): Promise<number> {
  const tryListen = async (port: number): Promise<number | undefined> => await new Promise((resolve) => {
    const server = net.createServer()
    server.once('error', () => resolve(undefined))
    server.listen(port, '127.0.0.1', () => {
      const { port: actual } = server.address() as net.AddressInfo
      server.close(() => resolve(actual))
    })
  })
  return await tryListen(preferred) ?? await tryListen(0) as number
}

const log = (line: string): void => { process.stdout.write(`${line}\n`) }

// ---- start ----------------------------------------------------------------------------------------------------
const dataDir = args['data-dir'] ?? await mkdtemp(path.join(os.tmpdir(), 'lago-demo-'))
// mkdtemp makes it 0700; as root, PostgreSQL runs as another account that must reach it.
if (args['data-dir'] === undefined) await chmod(dataDir, 0o755)
const sim = await startLagoSimulator({ apiKey: 'demo-lago-key' })
const port = args.port !== undefined ? Number(args.port) : await freePort(3002)
log(`Lago simulator: ${sim.url}`)
log(`starting the service on an embedded PostgreSQL in ${dataDir} (the first start initialises it)…`)
const started = performance.now()
let app
try {
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
    DATA_DIR: dataDir,
    REDIS_URL: process.env.REDIS_URL,
    LAGO_API_URL: sim.url,
    LAGO_API_KEY: sim.apiKey,
    WEBHOOK_TOKENS: INGEST_TOKEN,
    API_KEYS: ADMIN_KEY,
    LITELLM_CUSTOMER_FIELDS: 'end_user',
    LAGO_PROBE_INTERVAL_MS: '500',
    RETRY_BASE_DELAY_MS: '200',
    RETRY_MAX_DELAY_MS: '2000'
  })
  await openDatabase(config) // before the app: a first initdb may outlast the plugin timeout on a slow machine
  // A demo shows results within seconds: shorter internal timings than a deployment's.
  app = await buildApp(config, {}, { forwarderPollIntervalMs: 200, lagoProbeMaxIntervalMs: 1000 })
  await app.listen({ host: '127.0.0.1', port })
} catch (err) {
  await stopEmbeddedServers()
  await sim.close()
  if (!(err instanceof StartupError)) throw err
  process.stderr.write(`the demo cannot start: ${err.message}\n`)
  process.exit(1)
}
const service = app
const base = `http://127.0.0.1:${port}`
log(`service: ${base} on ${service.database.description}, ready in ${((performance.now() - started) / 1000).toFixed(1)} s`)

const client = new Pool(base, { connections: 8 })
const headers = (contentType: string): Record<string, string> => ({ 'content-type': contentType, authorization: `Bearer ${INGEST_TOKEN}`, 'user-agent': 'litellm/1.80.0' })
const getJson = async <T>(p: string): Promise<T> => {
  const res = await client.request({ method: 'GET', path: p, headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  return await res.body.json() as T
}

// ---- traffic --------------------------------------------------------------------------------------------------
const sent: Call[] = [] // every call sent, once: what must be billed
const perFormat: Record<Format, number> = { seed: 0, batch: 0, generic: 0, lago: 0, openmeter: 0 }
const resentPerFormat: Record<Format, number> = { seed: 0, batch: 0, generic: 0, lago: 0, openmeter: 0 }
/** resent: items the demo sent again; duplicates: items the service answered as already stored. */
const outcome = { items: 0, resent: 0, duplicates: 0, bad: 0, badRefused: 0, errors: 0 }
/** What was sent, byte for byte, so that a re-send is exactly what LiteLLM would send again. */
interface Sent { format: Format, path: string, contentType: string, payload: string, items: number }
const history: Sent[] = []
/**
 * The formats whose answer says an item was already stored: the seed endpoint (200 "duplicate"), the batch and
 * generic_api endpoints (their `duplicate` count). Lago's and OpenMeter's answer a re-send as they answer a first
 * send (200 with the event, 204): there only the stored count shows that a re-send was stored once.
 */
const REPORTS_DUPLICATES: Record<Format, boolean> = { seed: true, batch: true, generic: true, lago: false, openmeter: false }

/** Sends a request; its status and how many of its items the service answered as duplicates. */
async function send (request: Sent): Promise<{ status: number, duplicates: number }> {
  const res = await client.request({ method: 'POST', path: request.path, headers: headers(request.contentType), body: request.payload })
  const text = await res.body.text()
  let duplicates = 0
  if (res.statusCode < 300 && REPORTS_DUPLICATES[request.format]) {
    const body = JSON.parse(text) as { status?: string, duplicate?: number }
    duplicates = request.format === 'seed' ? (body.status === 'duplicate' ? 1 : 0) : body.duplicate ?? 0
  }
  return { status: res.statusCode, duplicates }
}

async function step (): Promise<void> {
  const roll = random()
  if (roll < 0.08 && history.length > 0) {
    // A re-send (a retry after a lost reply, a double-fired callback): must be stored and billed once.
    const previous = pick(history)
    const { status, duplicates } = await send(previous)
    if (status >= 400) outcome.errors++
    outcome.items += previous.items
    outcome.resent += previous.items
    outcome.duplicates += duplicates
    resentPerFormat[previous.format] += previous.items
    return
  }
  if (roll < 0.12) {
    // A bad item: negative tokens, or no customer. Refused with a reason, nothing stored.
    const call = newCall()
    const body = bodyFor('seed', [call]).body as Record<string, unknown>
    const bad = random() < 0.5 ? { ...body, tokens_input: -5 } : { ...body, customer_id: undefined }
    const res = await client.request({ method: 'POST', path: '/webhooks/litellm', headers: headers('application/json'), body: JSON.stringify(bad) })
    await res.body.dump()
    outcome.items++
    outcome.bad++
    if (res.statusCode === 400) outcome.badRefused++
    return
  }
  const format = FORMATS[Math.floor(random() * FORMATS.length)]
  const calls = Array.from({ length: format === 'batch' || format === 'generic' ? 2 + Math.floor(random() * 4) : 1 }, newCall)
  const { path: p, contentType, body } = bodyFor(format, calls)
  const request: Sent = { format, path: p, contentType, payload: JSON.stringify(body), items: calls.length }
  const { status, duplicates } = await send(request)
  outcome.items += calls.length
  outcome.duplicates += duplicates // 0 for a first send, unless the service is wrong
  if (status >= 400) {
    outcome.errors++
    return
  }
  perFormat[format] += calls.length
  sent.push(...calls)
  history.push(request)
}

interface Stats { totals: { received: number, forwarded: number, pending: number, failed: number, dead: number, unmapped: number, not_billable: number } }
let stats: Stats['totals'] = { received: 0, forwarded: 0, pending: 0, failed: 0, dead: 0, unmapped: 0, not_billable: 0 }
const outageMs = Math.min(3000, Math.max(1000, Math.round(durationMs / 6)))
let outageAt: number | undefined
const t0 = Date.now()
const lagoState = (): string => outageAt !== undefined && Date.now() < outageAt + outageMs ? 'Lago DOWN (simulated outage)' : 'Lago up'
const progress = (final = false): void => {
  const line = `${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s  sent ${outcome.items}  stored ${stats.received}  in Lago ${sim.state.storedEvents().length}  ${lagoState()}`
  if (process.stdout.isTTY) process.stdout.write(`\r${line.padEnd(100)}${final ? '\n' : ''}`)
  else if (final || Math.floor((Date.now() - t0) / 1000) % 5 === 0) log(line)
}
// The ticker reads the stats while traffic runs; the drain below reads them itself, and a ticker answer arriving
// after it (an older read) must not overwrite its final figures.
let tickerReadsStats = true
const ticker = setInterval(() => {
  getJson<Stats>('/webhooks/stats').then((s) => { if (tickerReadsStats) stats = s.totals }, () => {})
  progress()
}, 1000)

log(`sending LiteLLM-like traffic for ${durationMs / 1000} s (customers ${CUSTOMERS.join(', ')}; formats ${FORMATS.join(', ')})`)
while (Date.now() - t0 < durationMs) {
  if (outageAt === undefined && Date.now() - t0 > durationMs * 0.4) {
    outageAt = Date.now()
    sim.faults.outage(outageMs, '503')
  }
  await Promise.all([step(), step(), step(), step()])
  await new Promise((resolve) => setTimeout(resolve, 20))
}

// Everything stored must reach Lago once the outage is over: wait for the forwarder to drain.
tickerReadsStats = false
const drainUntil = Date.now() + 120_000
while (Date.now() < drainUntil) {
  stats = (await getJson<Stats>('/webhooks/stats')).totals
  if (stats.pending === 0 && stats.failed === 0 && stats.forwarded + stats.not_billable + stats.dead + stats.unmapped === stats.received) break
  progress()
  await new Promise((resolve) => setTimeout(resolve, 250))
}
clearInterval(ticker)
progress(true)

// ---- summary --------------------------------------------------------------------------------------------------
const lagoEvents = sim.state.storedEvents()
const lagoIds = new Set(lagoEvents.map((e) => e.transaction_id))
interface Usage { totals: { requests: number, total_tokens: number, cost_usd: string } }
const customers: Record<string, { requests: number, tokens: number, cost: string, invoiceCents: number, invoiceUnits: string, currency: string }> = {}
for (const customer of CUSTOMERS) {
  const usage = await getJson<Usage>(`/api/customers/${customer}/usage`)
  let invoiceCents = 0
  let invoiceUnits = '0'
  let currency = 'USD'
  try {
    const { customer_usage: u } = sim.state.currentUsage(customer, { external_subscription_id: customer })
    invoiceCents = u.amount_cents
    currency = u.currency ?? 'USD'
    invoiceUnits = u.charges_usage.reduce((n, c) => n + Number(c.units), 0).toString()
  } catch {} // no subscription: nothing reached Lago for this customer
  customers[customer] = { requests: usage.totals.requests, tokens: usage.totals.total_tokens, cost: usage.totals.cost_usd, invoiceCents, invoiceUnits, currency }
}
const summary = {
  database: service.database.description,
  duration_s: durationMs / 1000,
  items_sent: outcome.items,
  per_format: perFormat,
  stored: stats.received,
  duplicates_caught: outcome.duplicates,
  resent_items: outcome.resent,
  resent_per_format: resentPerFormat,
  bad_items_refused: outcome.badRefused,
  bad_items_sent: outcome.bad,
  refused_valid_requests: outcome.errors,
  forwarded: stats.forwarded,
  lago_events: lagoEvents.length,
  lago_distinct_transactions: lagoIds.size,
  not_yet_forwarded: stats.pending + stats.failed + stats.unmapped + stats.dead,
  lago_outage_ms: outageMs,
  customers,
  sent
}

const money = (cents: number, currency: string): string => `${(cents / 100).toFixed(2)} ${currency}`
log('')
log(`Summary (${summary.duration_s} s on ${summary.database})`)
log(`  items received          ${summary.items_sent}  (${Object.entries(perFormat).map(([f, n]) => `${f} ${n}`).join(', ')}, plus re-sends and bad items)`)
log(`  stored                  ${summary.stored}  (one row per LLM call)`)
const resentSilently = resentPerFormat.lago + resentPerFormat.openmeter
log(`  duplicates caught       ${summary.duplicates_caught} of ${summary.resent_items - resentSilently} re-sent items, as the service answered them` +
  `${resentSilently > 0 ? `; ${resentSilently} more re-sent in the lago and openmeter formats, whose answers do not say so (stored once all the same)` : ''}`)
log(`  bad items refused       ${summary.bad_items_refused} of ${summary.bad_items_sent}  (400 with a reason, nothing stored)`)
log(`  forwarded to Lago       ${summary.forwarded}  exactly once: Lago holds ${summary.lago_events} events, ${summary.lago_distinct_transactions} distinct transaction ids`)
log(`  Lago outage             ${(outageMs / 1000).toFixed(1)} s during the run: forwarding paused, then caught up${summary.not_yet_forwarded > 0 ? ` (${summary.not_yet_forwarded} still waiting)` : ', nothing lost'}`)
log('  per customer            calls    tokens     cost (LiteLLM)   Lago would invoice (current usage, standard plan)')
for (const [id, c] of Object.entries(customers)) {
  log(`    ${id.padEnd(20)}  ${String(c.requests).padStart(6)}  ${String(c.tokens).padStart(8)}     ${c.cost.padEnd(16)} ${money(c.invoiceCents, c.currency)} for ${c.invoiceUnits} tokens`)
}
log('')
log(`Open ${base}/docs (the API, try it with the key ${ADMIN_KEY}), ${base}/dashboard, ${base}/health`)
log(`Lago simulator: ${sim.url}/__simulator/state, ${sim.url}/__simulator/events`)
if (args.json !== undefined) await writeFile(args.json, JSON.stringify(summary, null, 2))

const shutdown = async (): Promise<void> => {
  await client.close()
  await service.close()
  await sim.close()
  if (args['data-dir'] === undefined) await rm(dataDir, { recursive: true, force: true })
}
if (args.serve) {
  log('--serve: the service and the Lago simulator keep running; Ctrl-C stops them')
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => { shutdown().then(() => process.exit(0), () => process.exit(1)) })
} else {
  await shutdown()
}
