import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type pg from 'pg'
import type { LagoSimulator, StartOptions } from '../../scripts/lago-simulator/index.js'
import { build, seedEvent, sqlClient, uid } from './app.js'
import { ADMIN_KEY, FAST_FORWARDING, ingest, storedFor, until } from './forwarding.js'
import { simulator } from './lago.js'
import { apiClient } from './api.js'

type TestContext = { teardown: (fn: () => unknown) => void }

/** This test file's key for organizations' secrets at rest. */
export const SECRETS_KEY = randomBytes(32).toString('base64')

export interface TwoOrganizations {
  app: FastifyInstance
  /** The default organization's Lago (LAGO_API_URL / LAGO_API_KEY). */
  simA: LagoSimulator
  /** The second organization's Lago, with another key. */
  simB: LagoSimulator
  /** The second organization's id (unique per test: tests of a file share one database). */
  b: string
  /** B's ingestion token: events posted with it are B's. */
  tokenB: string
}

/** A new organization's id, unique in this file's database. */
export const organizationId = (): string => uid('org').toLowerCase().replace(/[^a-z0-9_-]/g, '-').slice(0, 60)

export const ADMIN_API_KEY = 'admin-api-key-for-organizations'

/** Adds an organization billing into `sim` (its own Lago URL and key) through the admin API; its ingestion token. */
export async function addOrganization (app: FastifyInstance, id: string, sim: LagoSimulator, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/organizations',
    headers: { authorization: `Bearer ${ADMIN_API_KEY}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ id, name: `Organization ${id}`, lago_api_url: sim.url, lago_api_key: sim.apiKey, ...extra })
  })
  if (res.statusCode !== 201) throw new Error(`creating organization ${id}: ${res.statusCode} ${res.body}`)
  return res.json().ingestion_token as string
}

/** The keys of `default` and the admin key of a test file using `serviceWithSecondOrganization`. */
export interface DefaultKeys { admin: string, keyA: string, tokenA: string }

/**
 * The service with `default` billing into one Lago simulator (LAGO_API_KEY lago-key-a; API_KEYS keyA, WEBHOOK_TOKENS
 * tokenA, ADMIN_API_KEYS admin), forwarding and bootstrap off, and a second organization `id` created through the
 * admin API, billing into another simulator (lago-key-b). `created` is the admin API's 201 answer.
 */
export async function serviceWithSecondOrganization (t: TestContext, keys: DefaultKeys, id: string, options: { env?: Record<string, string>, extra?: Record<string, unknown>, name?: string } = {}) {
  const simA = await simulator(t, { apiKey: 'lago-key-a' })
  const simB = await simulator(t, { apiKey: 'lago-key-b' })
  const app = await build(t, {
    LAGO_API_URL: simA.url,
    LAGO_API_KEY: 'lago-key-a',
    API_KEYS: keys.keyA,
    ADMIN_API_KEYS: keys.admin,
    WEBHOOK_TOKENS: keys.tokenA,
    ORGANIZATION_SECRETS_KEY: randomBytes(32).toString('base64'),
    FORWARDER_ENABLED: 'false',
    BOOTSTRAP_ON_START: 'false',
    ...options.env
  })
  const adminApi = apiClient(app, keys.admin)
  const created = await adminApi.post('/api/organizations', { id, name: options.name ?? 'Beta Ltd', lago_api_url: simB.url, lago_api_key: 'lago-key-b', ...options.extra })
  if (created.statusCode !== 201) throw new Error(`creating organization ${id}: ${created.statusCode} ${created.body}`)
  const { ingestion_token: tokenB, api_key: keyB } = created.json()
  return { app, simA, simB, admin: adminApi, created, tokenB: tokenB as string, keyB: keyB as string }
}

/** A call to the admin API (ADMIN_API_KEY); throws unless it answers 2xx. */
export async function admin (app: FastifyInstance, method: 'POST' | 'PUT' | 'PATCH', url: string, body: Record<string, unknown> = {}): Promise<void> {
  const res = await app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN_API_KEY}`, 'content-type': 'application/json' }, payload: JSON.stringify(body) })
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
}

/** Posts events with an organization's ingestion token (batch webhook); how many were accepted. */
export async function ingestAs (app: FastifyInstance, token: string, events: Array<Record<string, unknown>>): Promise<number> {
  let accepted = 0
  for (let i = 0; i < events.length; i += 1000) {
    const res = await app.inject({ method: 'POST', url: '/webhooks/litellm/batch', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify(events.slice(i, i + 1000)) })
    if (res.statusCode !== 202 && res.statusCode !== 200) throw new Error(`ingest failed: ${res.statusCode} ${res.body}`)
    accepted += res.json().accepted as number
  }
  return accepted
}

/**
 * Two Lago simulators with different keys and the whole service: `default` bills into A (from the environment),
 * a second organization into B.
 */
export async function buildTwoOrganizations (t: TestContext, env: Record<string, string> = {}, sims: { a?: StartOptions, b?: StartOptions } = {}): Promise<TwoOrganizations> {
  const simA = await simulator(t, { recordEventBodies: true, apiKey: 'key-of-organization-a', ...sims.a })
  const simB = await simulator(t, { recordEventBodies: true, apiKey: 'key-of-organization-b', ...sims.b })
  const app = await build(t, {
    LAGO_API_URL: simA.url,
    LAGO_API_KEY: simA.apiKey,
    API_KEYS: ADMIN_KEY,
    ADMIN_API_KEYS: ADMIN_API_KEY,
    ORGANIZATION_SECRETS_KEY: SECRETS_KEY,
    ...FAST_FORWARDING,
    ...env
  })
  const b = organizationId()
  const tokenB = await addOrganization(app, b, simB)
  return { app, simA, simB, b, tokenB }
}

/** Usage events (the seed format) for one customer, timestamped now. */
export const eventsOf = (customer: string, n: number): Array<Record<string, unknown>> =>
  Array.from({ length: n }, () => seedEvent({ customer_id: customer, timestamp: Math.floor(Date.now() / 1000) }))

/**
 * Stores usage events for an organization straight into the table (one multi-row insert), for backlogs too large
 * to post in a test.
 */
export async function storeFor (db: pg.Client, organization: string, events: Array<Record<string, unknown>>): Promise<void> {
  const rows = events.map((e) => [organization, e.request_id, e.customer_id, e.model, e.provider, e.tokens_input, e.tokens_output, e.total_tokens, String(e.cost_usd), new Date(Number(e.timestamp) * 1000).toISOString()])
  for (let i = 0; i < rows.length; i += 5000) {
    const slice = rows.slice(i, i + 5000)
    const columns = ['organization_id', 'request_id', 'customer_external_id', 'model', 'provider', 'tokens_input', 'tokens_output', 'total_tokens', 'cost_usd', 'timestamp']
    await db.query(`
      INSERT INTO litellm_usage_events (${columns.join(', ')}, source, fingerprint)
      SELECT ${columns.map((c) => `x.${c}`).join(', ')}, 'test', md5(x.request_id)
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::numeric[], $10::timestamptz[])
          AS x(${columns.join(', ')})`, columns.map((_, c) => slice.map((r) => r[c])))
  }
}

/** How many of an organization's usage events (of these customers) are in each status. */
export async function organizationCounts (db: pg.Client, organization: string, customers: string[]): Promise<Record<string, number>> {
  const { rows } = await db.query('SELECT status, count(*)::int AS n FROM litellm_usage_events WHERE organization_id = $1 AND customer_external_id = ANY($2) GROUP BY status', [organization, customers])
  return Object.fromEntries(rows.map((r: { status: string, n: number }) => [r.status, r.n]))
}

/** True when `sim` holds each of these events exactly once. */
export function eachOnce (sim: LagoSimulator, events: Array<Record<string, unknown>>): boolean {
  const stored = storedFor(sim, events.map((e) => e.request_id))
  return stored.size === events.length && [...stored.values()].every((n) => n === 1)
}

/** How many of these events `sim` holds (0 means none reached it). */
export const heldBy = (sim: LagoSimulator, events: Array<Record<string, unknown>>): number => storedFor(sim, events.map((e) => e.request_id)).size

export { ADMIN_KEY }

/**
 * Two organizations (buildTwoOrganizations), a customer in each, and one event of each already in its own Lago:
 * both forward while their Lagos are healthy, before a test breaks one of them.
 */
export async function twoOrganizationsForwarding (t: TestContext, env: Record<string, string> = {}) {
  const two = await buildTwoOrganizations(t, env)
  const db = await sqlClient(t)
  const [cusA, cusB] = [uid('cus-a'), uid('cus-b')]
  const countsA = async (): Promise<Record<string, number>> => await organizationCounts(db, 'default', [cusA])
  const countsB = async (): Promise<Record<string, number>> => await organizationCounts(db, two.b, [cusB])
  await ingest(two.app, eventsOf(cusA, 1))
  await ingestAs(two.app, two.tokenB, eventsOf(cusB, 1))
  await until(async () => (await countsA()).forwarded === 1 && (await countsB()).forwarded === 1, 'warm up')
  return { ...two, db, cusA, cusB, countsA, countsB }
}
