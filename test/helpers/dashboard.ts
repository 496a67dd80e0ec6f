import type pg from 'pg'
import Big from 'big.js'
import { uid } from './app.js'

/** One stored usage event, as a hand-made table row: what the dashboard's numbers must add up from. */
export interface SeededEvent {
  request_id: string
  customer: string
  model: string
  source: string
  status: 'pending' | 'failed' | 'forwarded' | 'dead' | 'unmapped' | 'not_billable' | 'lago_error'
  cost_usd: string
  total_tokens: number
  timestamp: Date
  kind?: string
  reason?: string
  metadata?: Record<string, unknown>
}

export const REJECTED = 'Lago rejected the event: {"code":["value_is_invalid"]}'
export const EXHAUSTED = 'Lago answered 500 Internal Server Error'
export const NO_SUBSCRIPTION = 'customer "hooli" has no active Lago subscription; create it (POST /api/customers with a plan_code) or set AUTO_PROVISION_CUSTOMERS=true'
/** How the Lago-webhooks plugin words an event Lago stored but reported it cannot bill (events.errors). */
export const LAGO_ERROR = 'Lago cannot bill this event: invalid_code'
export const NO_MAPPING = 'no customer mapping for team (LITELLM_MAPPED_CUSTOMERS_ONLY=true) and no LITELLM_DEFAULT_CUSTOMER: add a mapping (POST /api/customer-mappings)'

const DAY = 86_400_000

/**
 * Events in every status, for three customers and three models over the last five days, from every source, with
 * costs that a float sum would get wrong (0.1 + 0.2, many decimals). `now` fixes the times.
 */
export function dashboardEvents (now = Date.now()): SeededEvent[] {
  const at = (daysAgo: number, minutes = 5): Date => new Date(now - daysAgo * DAY - minutes * 60_000)
  const e = (customer: string, model: string, source: string, status: SeededEvent['status'], cost: string, tokens: number, daysAgo: number, extra: Partial<SeededEvent> = {}): SeededEvent =>
    ({ request_id: uid('dash'), customer, model, source, status, cost_usd: cost, total_tokens: tokens, timestamp: at(daysAgo), ...extra })
  const dead = { kind: 'rejected', reason: REJECTED }
  const exhausted = { kind: 'exhausted', reason: EXHAUSTED }
  const teamRed = { kind: 'unmapped', reason: NO_MAPPING, metadata: { identities: { team: 'team-red' } } }
  return [
    e('acme', 'gpt-4o', 'webhook', 'forwarded', '0.1', 1000, 0),
    e('acme', 'gpt-4o', 'webhook_batch', 'forwarded', '0.2', 2000, 1),
    e('acme', 'claude-3-5-sonnet', 'generic_api', 'forwarded', '1.000000000000000001', 3000, 2),
    e('acme', 'gpt-4o', 'lago_callback', 'pending', '0.00375', 250, 0),
    e('acme', 'llama-3-70b', 'openmeter', 'failed', '0.0004', 40, 3, { kind: 'transient', reason: 'Lago answered 503' }),
    e('acme', 'gpt-4o', 'spend_logs', 'dead', '2.5', 5000, 1, dead),
    e('acme', 'gpt-4o', 'webhook', 'not_billable', '9.99', 10, 0, { kind: 'not_billable', reason: 'LiteLLM call failed' }),
    e('globex', 'claude-3-5-sonnet', 'generic_api', 'forwarded', '12.345678', 120_000, 4),
    e('globex', 'claude-3-5-sonnet', 'generic_api', 'dead', '0.7', 700, 2, dead),
    e('globex', 'llama-3-70b', 'webhook', 'dead', '0.3', 300, 0, exhausted),
    e('globex', 'gpt-4o', 'openmeter', 'pending', '0.05', 500, 1),
    e('initech', 'llama-3-70b', 'lago_callback', 'forwarded', '0.000001', 1, 3),
    e('initech', 'gpt-4o', 'webhook', 'dead', '0.01', 100, 0, dead),
    e('initech', 'gpt-4o', 'webhook', 'lago_error', '0.4', 400, 2, { kind: 'lago_error', reason: LAGO_ERROR }),
    e('hooli', 'gpt-4o', 'webhook', 'unmapped', '0.02', 200, 1, { kind: 'unmapped', reason: NO_SUBSCRIPTION }),
    e('(unmapped)', 'gpt-4o', 'generic_api', 'unmapped', '0.11', 1100, 0, teamRed),
    e('(unmapped)', 'claude-3-5-sonnet', 'generic_api', 'unmapped', '0.22', 2200, 1, teamRed)
  ]
}

/**
 * A second organization's events, unlike the first's in every figure: its own customers, one with the same id as
 * one of the first organization's (acme: two customers, one per organization), a dead group, a lago_error group and
 * an unmapped identity of its own.
 */
export function otherOrganizationEvents (now = Date.now()): SeededEvent[] {
  const at = (daysAgo: number): Date => new Date(now - daysAgo * DAY - 7 * 60_000)
  const e = (customer: string, model: string, source: string, status: SeededEvent['status'], cost: string, tokens: number, daysAgo: number, extra: Partial<SeededEvent> = {}): SeededEvent =>
    ({ request_id: uid('dash-b'), customer, model, source, status, cost_usd: cost, total_tokens: tokens, timestamp: at(daysAgo), ...extra })
  return [
    e('acme', 'gpt-4o-mini', 'webhook', 'forwarded', '5.5', 55_000, 0),
    e('acme', 'gpt-4o-mini', 'webhook', 'pending', '0.25', 2500, 1),
    e('zeta', 'mistral-large', 'generic_api', 'forwarded', '40.000000000000000002', 400_000, 2),
    e('zeta', 'mistral-large', 'generic_api', 'dead', '1.5', 1500, 0, { kind: 'rejected', reason: REJECTED }),
    e('zeta', 'mistral-large', 'generic_api', 'dead', '0.5', 500, 1, { kind: 'rejected', reason: REJECTED }),
    e('zeta', 'gpt-4o-mini', 'openmeter', 'lago_error', '0.75', 750, 2, { kind: 'lago_error', reason: LAGO_ERROR }),
    e('zeta', 'gpt-4o-mini', 'openmeter', 'not_billable', '3', 30, 0, { kind: 'not_billable', reason: 'LiteLLM call failed' }),
    e('(unmapped)', 'gpt-4o-mini', 'generic_api', 'unmapped', '0.125', 125, 0, { kind: 'unmapped', reason: NO_MAPPING, metadata: { identities: { team: 'team-blue' } } })
  ]
}

/** Statuses that need a person (GET /api/problems), by hand. */
const PROBLEM_STATUSES = ['dead', 'failed', 'unmapped', 'lago_error']

const sumOf = (events: SeededEvent[]): string => events.reduce((s, e) => s.plus(e.cost_usd), new Big(0)).toString()

/** What GET /api/pipeline must count for these events (all received and forwarded just now), by hand. */
export function expectedPipeline (events: SeededEvent[]): { received_last_minute: number, forwarded_last_minute: number, backlog: number, problems: number } {
  return {
    received_last_minute: events.length,
    forwarded_last_minute: events.filter((e) => e.status === 'forwarded').length,
    backlog: events.filter((e) => e.status === 'pending' || e.status === 'failed').length,
    problems: events.filter((e) => PROBLEM_STATUSES.includes(e.status)).length
  }
}

/** GET /api/problems' groups for these events, by hand: (status, reason), largest first, then by status and reason. */
export function expectedProblemGroups (events: SeededEvent[]): Array<{ status: string, reason: string, events: number, cost_usd: string }> {
  const groups = new Map<string, SeededEvent[]>()
  for (const e of events.filter((e) => PROBLEM_STATUSES.includes(e.status))) {
    const key = `${e.status}\u0000${e.reason ?? 'unknown'}`
    groups.set(key, [...(groups.get(key) ?? []), e])
  }
  return [...groups.values()].map((g) => ({ status: g[0].status, reason: g[0].reason ?? 'unknown', events: g.length, cost_usd: sumOf(g) }))
    .sort((a, b) => b.events - a.events || a.status.localeCompare(b.status) || a.reason.localeCompare(b.reason))
}

/** GET /api/usage's totals for these events over a range holding them all, by hand (failed calls are not usage). */
export function expectedUsageTotals (events: SeededEvent[]): { requests: number, total_tokens: number, cost_usd: string, customers: number } {
  const billable = events.filter((e) => e.status !== 'not_billable')
  return {
    requests: billable.length,
    total_tokens: billable.reduce((n, e) => n + e.total_tokens, 0),
    cost_usd: sumOf(billable),
    customers: new Set(billable.map((e) => e.customer)).size
  }
}

/**
 * Stores events as the service would have (its own columns, no API), forwarded ones processed just now, as
 * `organization`'s.
 */
export async function insertEvents (db: pg.Client, events: SeededEvent[], organization = 'default'): Promise<void> {
  const rows = events.map((e) => ({
    request_id: e.request_id,
    customer_external_id: e.customer,
    model: e.model,
    provider: e.model.startsWith('gpt') ? 'openai' : e.model.startsWith('claude') ? 'anthropic' : 'meta',
    source: e.source,
    status: e.status,
    cost_usd: e.cost_usd,
    total_tokens: e.total_tokens,
    timestamp: e.timestamp.toISOString(),
    last_error: e.reason !== undefined ? { kind: e.kind, message: e.reason } : null,
    metadata: e.metadata ?? {}
  }))
  await db.query(`
    INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, source, status, cost_usd,
                                      total_tokens, tokens_input, "timestamp", fingerprint, last_error, metadata,
                                      processed_at, next_attempt_at, attempts)
    SELECT $2, request_id, customer_external_id, model, provider, source, status, cost_usd, total_tokens, total_tokens,
           "timestamp", md5(request_id), last_error, metadata,
           CASE WHEN status = 'forwarded' THEN now() END,
           -- A failed event waits for its next attempt (a day away): it stays failed while the test looks at it.
           CASE WHEN status = 'failed' THEN now() + interval '1 day' ELSE now() END,
           CASE WHEN status IN ('failed', 'dead', 'lago_error') THEN 3 ELSE 0 END
      FROM jsonb_to_recordset($1::jsonb) AS x(request_id text, customer_external_id text, model text, provider text,
           source text, status text, cost_usd numeric, total_tokens bigint, "timestamp" timestamptz, last_error jsonb, metadata jsonb)`,
  [JSON.stringify(rows), organization])
}
