// npm run demo, short: its summary must match an independent count of what it sent (big.js sums, by customer), and
// the duplicates it reports are the ones the service answered as such, equal to what the demo re-sent.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import Big from 'big.js'
import { REDIS_URL, runTypeScript } from '../helpers/app.js'
import { freePort } from '../helpers/server-process.js'

t.setTimeout(600_000) // an initdb and a service start on a shared machine, then the run and the drain

interface Call { id: string, customer: string, model: string, provider: string, input: number, output: number, cost: string }
const FORMATS = ['seed', 'batch', 'generic', 'lago', 'openmeter'] as const
type Format = typeof FORMATS[number]
interface Summary {
  items_sent: number
  per_format: Record<Format, number>
  stored: number
  duplicates_caught: number
  resent_items: number
  resent_per_format: Record<Format, number>
  bad_items_sent: number
  bad_items_refused: number
  refused_valid_requests: number
  forwarded: number
  lago_events: number
  lago_distinct_transactions: number
  not_yet_forwarded: number
  customers: Record<string, { requests: number, tokens: number, cost: string, invoiceCents: number, invoiceUnits: string }>
  sent: Call[]
}

t.test('the demo tells the truth: received, duplicates, forwarded once, per-customer tokens, cost and invoice', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'lai-demo-test-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const json = path.join(dir, 'summary.json')
  let output = ''
  const child = spawn(process.execPath, [...runTypeScript(path.join(import.meta.dirname, '..', '..', 'scripts', 'demo.ts')),
    '--duration', '6', '--port', String(await freePort()), '--json', json], {
    cwd: dir,
    env: { PATH: process.env.PATH, FASTIFY_AUTOLOAD_TYPESCRIPT: '1', REDIS_URL },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { child.kill('SIGKILL') })
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const [code] = await once(child, 'exit')
  t.equal(code, 0, `the demo ends by itself: ${output.slice(-500)}`)
  t.match(output, /embedded PostgreSQL 17\.\d+/)
  t.match(output, /Open http:\/\/127\.0\.0\.1:\d+\/docs/)
  t.match(output, /\/dashboard/)

  const summary = JSON.parse(await readFile(json, 'utf8')) as Summary
  const calls = summary.sent
  t.ok(calls.length > 20, `some traffic (${calls.length} calls)`)
  t.equal(new Set(calls.map((c) => c.id)).size, calls.length, 'each call sent once as new')
  t.equal(summary.refused_valid_requests, 0, 'no valid request was refused')
  t.equal(summary.stored, calls.length, 'stored: one row per call, re-sends included')
  for (const format of FORMATS) t.ok(summary.per_format[format] > 0, `the ${format} format was sent (${summary.per_format[format]} calls)`)
  t.equal(FORMATS.reduce((n, f) => n + summary.per_format[f], 0), calls.length, 'the calls per format add up')
  t.ok(summary.resent_items > 0, `the run re-sent some items (${summary.resent_items})`)
  t.equal(FORMATS.reduce((n, f) => n + summary.resent_per_format[f], 0), summary.resent_items, 'the re-sends per format add up')
  // The seed, batch and generic endpoints answer a re-sent call as a duplicate; Lago's and OpenMeter's formats answer
  // it as a first send (their protocols have no such answer), so there the stored count above is the proof.
  const reported = summary.resent_per_format.seed + summary.resent_per_format.batch + summary.resent_per_format.generic
  t.equal(summary.duplicates_caught, reported,
    `duplicates counted from the service's answers = items re-sent in the formats that report them (${reported}; ` +
    `${summary.resent_items - reported} more re-sent as lago or openmeter events)`)
  t.ok(summary.bad_items_sent > 0, 'the run sent some bad items')
  t.equal(summary.bad_items_refused, summary.bad_items_sent, 'every bad item refused')
  t.equal(summary.items_sent, calls.length + summary.resent_items + summary.bad_items_sent, 'items received add up')
  t.equal(summary.not_yet_forwarded, 0, 'everything reached Lago despite the outage')
  t.equal(summary.forwarded, calls.length)
  t.equal(summary.lago_events, calls.length, 'Lago holds each call once')
  t.equal(summary.lago_distinct_transactions, calls.length)

  // The independent count: the calls the demo made up, summed here with big.js.
  const expected = new Map<string, { requests: number, tokens: number, cost: Big }>()
  for (const c of calls) {
    const e = expected.get(c.customer) ?? { requests: 0, tokens: 0, cost: new Big(0) }
    e.requests++
    e.tokens += c.input + c.output
    e.cost = e.cost.plus(c.cost)
    expected.set(c.customer, e)
  }
  for (const [customer, e] of expected) {
    const got = summary.customers[customer]
    t.equal(got.requests, e.requests, `${customer}: calls`)
    t.equal(got.tokens, e.tokens, `${customer}: tokens`)
    t.ok(new Big(got.cost).eq(e.cost), `${customer}: cost ${got.cost} = ${e.cost.toString()}`)
    t.equal(Number(got.invoiceUnits), e.tokens, `${customer}: Lago bills every token once`)
    // The default plan: 0.000002 USD a token, one fee line per model and provider, each rounded to the cent.
    const exactCents = new Big(e.tokens).times('0.0002')
    t.ok(exactCents.minus(got.invoiceCents).abs().lte(4), `${customer}: invoice ${got.invoiceCents} cents ≈ ${exactCents.toFixed(2)} (at most 8 fee lines, each rounded)`)
  }
})
