import { randomUUID } from 'node:crypto'
import t from 'tap'
import { build, sqlClient, uid } from '../../../helpers/app.js'
import { ADMIN_KEY, buildForwarding, storedFor, until } from '../../../helpers/forwarding.js'
import { INGEST_TOKEN, litellmSimulator, postGeneric, postLago, storedEvents } from '../../../helpers/litellm.js'
import type { CallSpec, RecordedCall } from '../../../../scripts/litellm-simulator/index.js'

const MINUTE_US = 60_000_000
const reconcileEnv = (url: string, masterKey: string, extra: Record<string, string> = {}) => ({
  WEBHOOK_TOKENS: INGEST_TOKEN,
  LITELLM_URL: url,
  LITELLM_MASTER_KEY: masterKey,
  LITELLM_RECONCILE_LAG_MS: '60000',
  LITELLM_RECONCILE_LOOKBACK_MS: '7200000',
  LITELLM_RECONCILE_INTERVAL_MS: '3600000',
  ...extra
})
const nowUs = (): number => Date.now() * 1000

/** Each test reconciles its own simulated LiteLLM from scratch (the cursor is per database, as in production). */
async function freshCursor (t: Parameters<typeof sqlClient>[0]) {
  const db = await sqlClient(t)
  // Lago-callback events of an earlier test would make reconciliation skip their windows.
  await db.query('DELETE FROM litellm_reconciliation; DELETE FROM litellm_usage_events WHERE source = \'lago_callback\'')
    .catch((err: { code?: string }) => { if (err.code !== '42P01') throw err })
  return db
}

t.test('a LiteLLM outage window is fully recovered by reconciliation, with no double billing', async (t) => {
  const litellm = await litellmSimulator(t)
  const db = await freshCursor(t)
  const { app, sim: lago } = await buildForwarding(t, reconcileEnv(litellm.url, litellm.masterKey))
  const team = uid('team')
  // 40 calls over the last 45 to 5 minutes, of every kind LiteLLM records.
  const calls: RecordedCall[] = []
  for (let i = 0; i < 40; i++) {
    const spec: CallSpec = { team, endUser: `${team}-cust-${i % 4}`, startMicros: nowUs() - (45 - i) * MINUTE_US }
    if (i % 10 === 3) spec.failure = { errorClass: 'RateLimitError', errorCode: '429' }
    if (i % 10 === 6) spec.cacheHitOf = calls[i - 1].call
    if (i === 8) spec.cost = null
    calls.push(litellm.record(spec))
  }
  // LiteLLM pushed everything but calls 15–29 (this service was unreachable: generic_api drops the batch), and
  // fired one callback twice.
  const outage = (i: number): boolean => i >= 15 && i < 30
  const pushed = calls.filter((_, i) => !outage(i)).map((c) => c.payload)
  t.equal((await postGeneric(app, [...pushed, calls[2].payload])).statusCode, 202)

  const report = await app.reconciler.run()
  if (report.status === 'done' && report.counts.rows === 40) {
    // The first pass saw every row: 15 were missing, 25 already here.
    t.match(report.counts, { stored: 15, duplicate: 25, conflict: 0, rejected: 0 })
  }
  const again = await app.reconciler.run()
  t.match(again, { status: 'done', counts: { stored: 0 } }, 'a second pass finds nothing new')

  const stored = await storedEvents(db, 'metadata->\'identities\'->>\'team\' = $1', [team])
  t.equal(stored.length, 40, 'every call stored once')
  t.equal(new Set(stored.map((e) => `${e.litellm_id}@${e.litellm_id?.endsWith('_cache_hit') === true ? e.timestamp.getTime() : ''}`)).size, 40, 'one event per LiteLLM call')
  t.equal(stored.filter((e) => e.source === 'spend_logs').length, 15, 'the 15 lost pushes came from the spend logs')
  t.equal(stored.filter((e) => e.status === 'not_billable').length, 4)
  t.equal(stored.filter((e) => e.litellm_id?.endsWith('_cache_hit') === true).length, 4, 'cache hits are separate calls, each once')

  const billable = stored.filter((e) => e.status !== 'not_billable')
  await until(async () => (await storedEvents(db, 'metadata->\'identities\'->>\'team\' = $1 AND status = \'forwarded\'', [team])).length === billable.length, 'all billable calls forwarded')
  const inLago = storedFor(lago, stored.map((e) => e.request_id))
  t.equal(inLago.size, 36, 'every billable call reached Lago…')
  t.ok([...inLago.values()].every((n) => n === 1), '…exactly once')
  t.notOk(stored.filter((e) => e.status === 'not_billable').some((e) => inLago.has(e.request_id)), 'failed calls never reach Lago')
  t.same(lago.state.unbilledEvents(), [], 'and Lago can bill all of them')

  const stats = (await app.inject({ url: '/webhooks/stats', headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()
  t.match(stats.reconciliation, { status: 'idle', last_error: null, cursor: String })
  t.ok(Date.parse(stats.reconciliation.cursor) > Date.now() - 2 * 60_000, 'the cursor is within the lag of now')
  t.match(stats.by_source.spend_logs, { received: 15 })
  t.match((await app.inject('/health/metrics')).body, /litellm_reconcile_runs_total\{outcome="done",organization="default"\}/)
})

t.test('pages of 100 through /spend/logs/ui, and the unpaged /spend/logs by day', async (t) => {
  const litellm = await litellmSimulator(t)
  const team = uid('team')
  // Mid-window: windows run in 15-minute steps from LITELLM_RECONCILE_LOOKBACK_MS (2 h) ago.
  const base = nowUs() - 37.5 * MINUTE_US
  for (let i = 0; i < 250; i++) litellm.record({ team, startMicros: base + i * 1000 })
  const db = await freshCursor(t)
  // Its own subtest, so this app (and its start-up pass, due 1 s after ready) is closed before the daily one runs.
  await t.test('paged', async (t) => {
    const ui = await build(t, reconcileEnv(litellm.url, litellm.masterKey))
    await until(async () => (await ui.reconciler.run()).status === 'done', 'a finished pass')
    t.equal((await storedEvents(db, 'metadata->\'identities\'->>\'team\' = $1', [team])).length, 250)
    const pages = litellm.requests.filter((r) => r.path === '/spend/logs/ui' && r.status === 200)
    t.ok(pages.some((r) => r.query.page === '3' && r.query.page_size === '100'), 'three pages for the busy window')
    t.ok(pages.every((r) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(r.query.start_date)), 'dates as LiteLLM parses them')
  })

  const other = uid('team')
  for (let i = 0; i < 20; i++) litellm.record({ team: other, startMicros: base + i * MINUTE_US / 10 })
  await db.query('DELETE FROM litellm_reconciliation')
  const daily = await build(t, reconcileEnv(litellm.url, litellm.masterKey, { LITELLM_SPEND_LOGS_API: 'spend_logs' }))
  await until(async () => (await daily.reconciler.run()).status === 'done', 'a finished pass')
  t.equal((await storedEvents(db, 'metadata->\'identities\'->>\'team\' = $1', [other])).length, 20)
  t.ok(litellm.requests.some((r) => r.path === '/spend/logs' && r.query.summarize === 'false'))
})

t.test('failures leave the cursor where it was, say why, and resume', async (t) => {
  const litellm = await litellmSimulator(t)
  const team = uid('team')
  const call = litellm.record({ team, startMicros: nowUs() - 20 * MINUTE_US })
  const db = await freshCursor(t)
  // Its own subtest, so this app (and its start-up pass, due 1 s after ready) is closed before the next one runs.
  await t.test('wrong key', async (t) => {
    const wrongKey = await build(t, reconcileEnv(litellm.url, 'sk-wrong'))
    const refused = await wrongKey.reconciler.run()
    t.match(refused, { status: 'failed', error: /401.*LITELLM_MASTER_KEY/ })
    const stats = (await wrongKey.reconciler.state())
    t.match(stats, { status: 'failing', last_error: /LITELLM_MASTER_KEY/ })
  })

  const app = await build(t, reconcileEnv(litellm.url, litellm.masterKey))
  // LiteLLM fails until cleared, whichever pass meets it first (this one, or the app's own start-up pass, which
  // makes this one 'busy' while it lasts).
  litellm.faults.failNext(10, 503)
  let failed: Awaited<ReturnType<typeof app.reconciler.run>> = { status: 'busy' }
  await until(async () => (failed = await app.reconciler.run()).status !== 'busy', 'a pass of this app')
  t.match(failed, { status: 'failed', error: /503/ })
  t.equal((await storedEvents(db, 'request_id = $1', [call.call.responseId])).length, 0)
  litellm.faults.clear()
  await until(async () => (await app.reconciler.run()).status === 'done', 'a finished pass')
  t.equal((await storedEvents(db, 'request_id = $1', [call.call.responseId])).length, 1, 'the next pass recovers the window')
})

t.test('an old LiteLLM that only answers summarized spend is reported, not misread', async (t) => {
  const litellm = await litellmSimulator(t, { supportsSummarize: false })
  litellm.record({ team: uid('team'), startMicros: nowUs() - 20 * MINUTE_US })
  await freshCursor(t)
  const app = await build(t, reconcileEnv(litellm.url, litellm.masterKey, { LITELLM_SPEND_LOGS_API: 'spend_logs' }))
  t.match(await app.reconciler.run(), { status: 'failed', error: /aggregated spend.*LITELLM_SPEND_LOGS_API=ui/ })
})

t.test('windows where LiteLLM\'s Lago callback delivered calls are not reconciled (they would bill twice)', async (t) => {
  const litellm = await litellmSimulator(t)
  const db = await freshCursor(t)
  const app = await build(t, reconcileEnv(litellm.url, litellm.masterKey, { LITELLM_RECONCILE_LAG_MS: '0' }))
  const customer = uid('cust')
  // The same call through the Lago callback (random transaction_id) and in the spend logs.
  const call = litellm.record({ endUser: customer, startMicros: nowUs() - 2 * MINUTE_US })
  await postLago(app, '/api/v1/events', { event: { transaction_id: randomUUID(), external_subscription_id: customer, code: 'litellm_usage', properties: { model: 'gpt-4o-mini', response_cost: 0.000183, prompt_tokens: 412, completion_tokens: 202, total_tokens: 614 } } })
  const report = await app.reconciler.run()
  t.match(report, { status: 'done', counts: { stored: 0 } })
  t.ok(report.status === 'done' && report.counts.skipped_windows > 0)
  t.equal((await storedEvents(db, 'customer_external_id = $1', [customer])).length, 1, 'the call is billed once, through the callback')
  t.equal((await storedEvents(db, 'request_id = $1', [call.call.responseId])).length, 0)
  // The app's own start-up pass (1 s after ready) may be running now: the state says 'running' until it ends.
  await until(async () => (await app.reconciler.state()).status !== 'running', 'no pass running')
  t.match(await app.reconciler.state(), { status: 'blocked', reason: /Lago callback/ })
})

t.test('one replica reconciles at a time', async (t) => {
  const litellm = await litellmSimulator(t)
  const team = uid('team')
  for (let i = 0; i < 30; i++) litellm.record({ team, startMicros: nowUs() - (60 - i) * MINUTE_US })
  const db = await freshCursor(t)
  const a = await build(t, reconcileEnv(litellm.url, litellm.masterKey))
  const b = await build(t, reconcileEnv(litellm.url, litellm.masterKey))
  const reports = await Promise.all([a.reconciler.run(), b.reconciler.run()])
  t.ok(reports.some((r) => r.status === 'done'), 'one runs')
  t.equal((await storedEvents(db, 'metadata->\'identities\'->>\'team\' = $1', [team])).length, 30, 'every row stored once')
  // Each read names its window and page: none twice, whichever passes ran (these two, or the apps' own start-up
  // passes, due 1 s after ready, which a loaded machine reaches before b is built).
  const reads = litellm.requests.filter((r) => r.path === '/spend/logs/ui').map((r) => JSON.stringify(r.query))
  t.ok(reads.length >= 1)
  t.equal(new Set(reads).size, reads.length, 'LiteLLM read once per window, not by both')
})
