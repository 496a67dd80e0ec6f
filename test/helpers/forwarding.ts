import type { FastifyInstance } from 'fastify'
import type pg from 'pg'
import type { LagoSimulator, StartOptions } from '../../scripts/lago-simulator/index.js'
import type { Tuning } from '../../schemas/config.js'
import { build } from './app.js'
import { simulator } from './lago.js'

type TestContext = { teardown: (fn: () => unknown) => void }

export const ADMIN_KEY = 'admin-key'

/** Short timings so that retries, probes and polls happen within a test's patience: settings... */
export const FAST_FORWARDING: Record<string, string> = {
  RETRY_BASE_DELAY_MS: '20',
  RETRY_MAX_DELAY_MS: '200',
  LAGO_PROBE_INTERVAL_MS: '50',
  LAGO_TIMEOUT_MS: '1000',
  FORWARDER_LEASE_MS: '5000'
}

/** ...and internal timings (buildApp's tuning). */
export const FAST_TUNING: Partial<Tuning> = {
  forwarderPollIntervalMs: 50,
  lagoProbeMaxIntervalMs: 300,
  unmappedRecheckIntervalMs: 200,
  lagoWebhookPollIntervalMs: 50
}

/** A Lago simulator and the whole service forwarding to it. */
export async function buildForwarding (t: TestContext, env: Record<string, string> = {}, simOptions: StartOptions = {}, tuning: Partial<Tuning> = {}): Promise<{ app: FastifyInstance, sim: LagoSimulator }> {
  const sim = await simulator(t, { recordEventBodies: true, ...simOptions })
  const app = await build(t, { LAGO_API_URL: sim.url, LAGO_API_KEY: sim.apiKey, API_KEYS: ADMIN_KEY, ...FAST_FORWARDING, ...env }, { ...FAST_TUNING, ...tuning })
  return { app, sim }
}

/**
 * Waits until `check` holds, polling; fails with `what` after `timeoutMs`, and with what `state` then says (the
 * state that never came, for a failure seen once in a while to explain itself).
 */
export async function until (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000, state?: () => unknown): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) {
      let seen = ''
      if (state !== undefined) {
        try { seen = `; state then: ${JSON.stringify(await state())}` } catch (err) { seen = `; the state could not be read: ${String(err)}` }
      }
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** Posts events through the batch webhook (in slices the endpoint accepts) and returns how many were accepted. */
export async function ingest (app: FastifyInstance, events: Array<Record<string, unknown>>): Promise<number> {
  let accepted = 0
  for (let i = 0; i < events.length; i += 1000) {
    const res = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(events.slice(i, i + 1000)) })
    if (res.statusCode !== 202 && res.statusCode !== 200) throw new Error(`ingest failed: ${res.statusCode} ${res.body}`)
    accepted += res.json().accepted as number
  }
  return accepted
}

/** Stored events of the simulator for these transaction ids (request ids). */
export function storedFor (sim: LagoSimulator, requestIds: Iterable<unknown>): Map<string, number> {
  const wanted = new Set(requestIds)
  const counts = new Map<string, number>()
  for (const e of sim.state.storedEvents()) if (wanted.has(e.transaction_id)) counts.set(e.transaction_id, (counts.get(e.transaction_id) ?? 0) + 1)
  return counts
}

/** How many of a customer's usage events are in each status, e.g. { forwarded: 3, dead: 1 }. */
export async function statusCounts (db: pg.Client, customer: string): Promise<Record<string, number>> {
  const { rows } = await db.query('SELECT status, count(*)::int AS n FROM litellm_usage_events WHERE customer_external_id = $1 GROUP BY status', [customer])
  return Object.fromEntries(rows.map((r: { status: string, n: number }) => [r.status, r.n]))
}
