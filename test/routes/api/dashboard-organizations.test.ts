import { randomUUID } from 'node:crypto'
import t from 'tap'
import Big from 'big.js'
import type { FastifyInstance } from 'fastify'
import { build, sqlClient, type TestContext } from '../../helpers/app.js'
import { apiClient } from '../../helpers/api.js'
import { simulator } from '../../helpers/lago.js'
import { ADMIN_API_KEY, ADMIN_KEY, organizationId, SECRETS_KEY } from '../../helpers/organizations.js'
import {
  dashboardEvents, expectedPipeline, expectedProblemGroups, expectedUsageTotals, insertEvents, LAGO_ERROR,
  otherOrganizationEvents, REJECTED, type SeededEvent
} from '../../helpers/dashboard.js'

// The operator's views with two organizations: `default` (its key: API_KEYS) and B (its key: issued at creation).
// Each key sees its own organization's figures only; an admin key sees the one it names with X-Organization-Id.
// Forwarder and bootstrap of default off: the seeded statuses stay as seeded.
const OFFLINE = { API_KEYS: ADMIN_KEY, ADMIN_API_KEYS: ADMIN_API_KEY, ORGANIZATION_SECRETS_KEY: SECRETS_KEY, FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', LAGO_API_KEY: '' }

type Api = ReturnType<typeof apiClient>

interface Setup { app: FastifyInstance, b: string, keyB: string, eventsA: SeededEvent[], eventsB: SeededEvent[], from: string, to: string }

async function setup (t: TestContext): Promise<Setup> {
  const app = await build(t, OFFLINE)
  const simB = await simulator(t, { apiKey: 'key-of-organization-b' })
  const b = organizationId()
  const created = await apiClient(app, ADMIN_API_KEY).post('/api/organizations', { id: b, name: 'Organization B', lago_api_url: simB.url, lago_api_key: simB.apiKey })
  if (created.statusCode !== 201) throw new Error(created.body)
  const db = await sqlClient(t)
  // The file's tests share a database: start from no events (the counts tables too: TRUNCATE fires no row triggers).
  await db.query('TRUNCATE litellm_usage_events, usage_event_counts, usage_event_hourly_counts')
  const now = Date.now()
  const eventsA = dashboardEvents(now)
  const eventsB = otherOrganizationEvents(now)
  await insertEvents(db, eventsA)
  await insertEvents(db, eventsB, b)
  return { app, b, keyB: created.json().api_key, eventsA, eventsB, from: new Date(now - 10 * 86_400_000).toISOString(), to: new Date(now + 60_000).toISOString() }
}

/** The figures of one organization as its API shows them. */
async function views (api: Api, range: { from: string, to: string }, headers: Record<string, string> = {}): Promise<Record<string, any>> {
  const get = async (url: string): Promise<any> => {
    const res = await api.get(url, headers)
    if (res.statusCode !== 200) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
    return res.json()
  }
  const [pipeline, problems, usage, stats] = await Promise.all([
    get('/api/pipeline'), get('/api/problems'), get(`/api/usage?from=${range.from}&to=${range.to}&top=50`), get('/webhooks/stats')
  ])
  return {
    pipeline: { received_last_minute: pipeline.received_last_minute, forwarded_last_minute: pipeline.forwarded_last_minute, backlog: pipeline.backlog, problems: pipeline.sources.reduce((n: number, s: { problems: number }) => n + s.problems, 0) },
    groups: problems.groups.map((g: Record<string, unknown>) => ({ status: g.status, reason: g.reason, events: g.events, cost_usd: g.cost_usd })),
    identities: problems.unmapped_identities.map((u: { value: string }) => u.value),
    usage: usage.totals,
    customers: Object.fromEntries(usage.customers.map((c: { key: string, cost_usd: string }) => [c.key, c.cost_usd])),
    received: stats.totals.received,
    dead: stats.totals.dead,
    lago_error: stats.totals.lago_error
  }
}

/** The same figures computed by hand from the seeded rows. */
function byHand (events: SeededEvent[]): Record<string, unknown> {
  const billable = events.filter((e) => e.status !== 'not_billable')
  const customers = [...new Set(billable.map((e) => e.customer))]
  return {
    pipeline: expectedPipeline(events),
    groups: expectedProblemGroups(events),
    identities: [...new Set(events.filter((e) => e.status === 'unmapped' && e.customer === '(unmapped)')
      .map((e) => (e.metadata as { identities: { team: string } }).identities.team))],
    usage: expectedUsageTotals(events),
    customers: Object.fromEntries(customers.map((c) => [c, billable.filter((e) => e.customer === c).reduce((s, e) => s.plus(e.cost_usd), new Big(0)).toString()])),
    received: events.length,
    dead: events.filter((e) => e.status === 'dead').length,
    lago_error: events.filter((e) => e.status === 'lago_error').length
  }
}

t.test('each organization\'s key sees only its own pipeline, problems, usage and stats; the admin sees the organization it names', async (t) => {
  const { app, b, keyB, eventsA, eventsB, from, to } = await setup(t)
  const expectedA = byHand(eventsA)
  const expectedB = byHand(eventsB)
  // The hand figures differ in every view, so a merged or swapped answer cannot pass.
  t.equal(expectedA.received, 17)
  t.equal(expectedB.received, 8)
  t.same((expectedB.usage as { cost_usd: string }).cost_usd, '48.625000000000000002', 'B\'s cost by hand: 5.5 + 0.25 + 40.000000000000000002 + 1.5 + 0.5 + 0.75 + 0.125')

  t.same(await views(apiClient(app, ADMIN_KEY), { from, to }), expectedA, 'default\'s key: default\'s figures only')
  t.same(await views(apiClient(app, keyB), { from, to }), expectedB, 'B\'s key: B\'s figures only')
  t.same(await views(apiClient(app, ADMIN_API_KEY), { from, to }, { 'x-organization-id': b }), expectedB, 'the admin naming B: B\'s figures')
  t.same(await views(apiClient(app, ADMIN_API_KEY), { from, to }), expectedA, 'the admin naming none: default\'s')
  const named = await apiClient(app, keyB).get('/api/pipeline', { 'x-organization-id': 'default' })
  t.equal(named.statusCode, 403, 'a non-admin key cannot name another organization')
  t.equal(named.json().code, 'admin_required')

  // The same customer id in two organizations is two customers: acme's cost differs by organization.
  t.equal((expectedA.customers as Record<string, string>).acme, '3.804150000000000001')
  t.equal((expectedB.customers as Record<string, string>).acme, '5.75')

  const unknown = await apiClient(app, ADMIN_API_KEY).get('/api/pipeline', { 'x-organization-id': 'no-such-organization' })
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().code, 'organization_not_found')
})

t.test('retry, Lago status, Lago webhooks and the forwarding list stay within the caller\'s organization', async (t) => {
  const { app, b, keyB, eventsA, eventsB } = await setup(t)
  const db = await sqlClient(t)
  const apiA = apiClient(app, ADMIN_KEY)
  const apiB = apiClient(app, keyB)
  const statusOf = async (events: SeededEvent[], organization: string): Promise<string[]> =>
    (await db.query('SELECT status FROM litellm_usage_events WHERE organization_id = $1 AND request_id = ANY($2) ORDER BY request_id', [organization, events.map((e) => e.request_id)])).rows.map((r: { status: string }) => r.status)
  const deadA = eventsA.filter((e) => e.status === 'dead' && e.reason === REJECTED)
  const deadB = eventsB.filter((e) => e.status === 'dead' && e.reason === REJECTED)

  // Both organizations have a dead group with the same reason: B's retry takes B's only.
  t.same((await apiB.post('/webhooks/retry', { statuses: ['dead'], reason: REJECTED })).json(), { retried: deadB.length })
  t.same(await statusOf(deadB, b), deadB.map(() => 'pending'), 'B\'s dead events are back in B\'s queue')
  t.same(await statusOf(deadA, 'default'), deadA.map(() => 'dead'), 'default\'s are untouched')
  // "all" means all of the caller's: B has only its failed/dead left (none now), so nothing of default's moves.
  t.same((await apiB.post('/webhooks/retry', { all: true })).json(), { retried: 0 })
  t.same((await apiB.post('/webhooks/retry', { statuses: ['lago_error'], reason: LAGO_ERROR })).json(), { retried: 1 }, 'B\'s lago_error group')
  t.equal((await db.query("SELECT count(*)::int AS n FROM litellm_usage_events WHERE organization_id = 'default' AND status = 'lago_error'")).rows[0].n, 1, 'default\'s lago_error event stays')
  // The admin retrying in B: B's events, never default's.
  t.same((await apiClient(app, ADMIN_API_KEY).post('/webhooks/retry', { statuses: ['dead'], reason: REJECTED }, { 'x-organization-id': b })).json(), { retried: 0 })
  t.same((await apiA.post('/webhooks/retry', { statuses: ['dead'], reason: REJECTED })).json(), { retried: deadA.length }, 'default\'s own retry')

  // Lago status: each organization's last delivery, Lago and forwarder.
  await db.query(`INSERT INTO webhook_delivery_logs (organization_id, event_type, endpoint, request_count, http_status, duration_ms, created_at)
                  VALUES ('default', 'usage', '/api/v1/events/batch', 7, 200, 5, now() - interval '1 minute'),
                         ($1, 'usage', '/api/v1/events/batch', 3, 422, 5, now() - interval '1 hour')`, [b])
  t.match((await apiA.get('/api/lago/status')).json(), { configured: false, last_delivery: { events: 7, http_status: 200 }, forwarder: { status: 'disabled' } },
    'default: LAGO_API_KEY unset, its own delivery')
  t.match((await apiB.get('/api/lago/status')).json(), { configured: true, last_delivery: { events: 3, http_status: 422 } }, 'B: its own Lago and its own older delivery, not default\'s newer one')

  // Lago webhooks: each organization's own (stored already processed: nothing acts on them).
  const webhook = async (organization: string, type: string): Promise<void> => {
    await db.query(`INSERT INTO lago_webhooks (organization_id, unique_key, webhook_type, object_type, signature_algo, customer_external_id, body, processed_at)
                    VALUES ($1, $2, $3, 'invoice', 'hmac', 'acme', '{}', now())`, [organization, randomUUID(), type])
  }
  await webhook('default', 'invoice.created')
  await webhook(b, 'alert.triggered')
  await webhook(b, 'invoice.created')
  const typesOf = async (api: Api, headers?: Record<string, string>): Promise<string[]> =>
    (await api.get('/api/lago-webhooks', headers)).json().webhooks.map((w: { webhook_type: string, organization_id: string }) => `${w.organization_id}:${w.webhook_type}`)
  t.same(await typesOf(apiA), ['default:invoice.created'])
  t.same(await typesOf(apiB), [`${b}:invoice.created`, `${b}:alert.triggered`], 'newest first, B\'s only')
  t.same(await typesOf(apiClient(app, ADMIN_API_KEY), { 'x-organization-id': b }), [`${b}:invoice.created`, `${b}:alert.triggered`])

  // Forwarding per organization in the stats: a key sees its own organization; the admin every one.
  const listed = async (api: Api): Promise<string[]> => (await api.get('/webhooks/stats')).json().organizations.map((o: { id: string }) => o.id).sort()
  t.same(await listed(apiB), [b])
  t.same(await listed(apiA), ['default'])
  t.ok((await listed(apiClient(app, ADMIN_API_KEY))).includes(b) && (await listed(apiClient(app, ADMIN_API_KEY))).includes('default'), 'the admin: every organization')
  // Reconciliation with LiteLLM is the deployment's: shown to default only.
  t.ok('reconciliation' in (await apiA.get('/webhooks/stats')).json())
  t.notOk('reconciliation' in (await apiB.get('/webhooks/stats')).json())
})
