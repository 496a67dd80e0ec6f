import { request } from 'undici'
import { LagoClient, type LagoAttempt, type LagoClientOptions } from '../../plugins/app/lago/client.js'
import type { PlanInput } from '../../plugins/app/lago/types.js'
import { startLagoSimulator, type LagoSimulator, type StartOptions } from '../../scripts/lago-simulator/index.js'

type TestContext = { teardown: (fn: () => unknown) => void }

/** A simulator on a free port, closed when the test ends. */
export async function simulator (t: TestContext, options: StartOptions = {}): Promise<LagoSimulator> {
  const sim = await startLagoSimulator({ apiKey: 'test-key', ...options })
  t.teardown(() => sim.close())
  return sim
}

/** A client for the simulator that records its attempts, closed when the test ends. */
export function clientFor (t: TestContext, sim: LagoSimulator, options: Partial<LagoClientOptions> = {}): { client: LagoClient, attempts: LagoAttempt[] } {
  const attempts: LagoAttempt[] = []
  const client = new LagoClient({ baseUrl: sim.url, apiKey: sim.apiKey, headersTimeoutMs: 2000, requestTimeoutMs: 2000, observer: (a) => attempts.push(a), ...options })
  t.teardown(() => client.close())
  return { client, attempts }
}

/** A raw HTTP call to the simulator (for exact status, headers and body checks). */
export async function raw (sim: LagoSimulator, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, text: string, json: () => any }> {
  const res = await request(`${sim.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${sim.apiKey}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body !== undefined ? JSON.stringify(body) : undefined
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

/** An event for the default ai_usage metric, as the forwarder sends it. */
export function usageEvent (transactionId: string, externalSubscriptionId: string, properties: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    transaction_id: transactionId,
    external_subscription_id: externalSubscriptionId,
    code: 'ai_usage',
    timestamp: nowSeconds(),
    properties: { tokens_input: 100, tokens_output: 150, total_tokens: 250, model: 'gpt-4o', provider: 'openai', cost_usd: '0.00375', ...properties },
    precise_total_amount_cents: '0.375',
    ...extra
  }
}

/**
 * The catalog most tests need: a sum_agg metric "ai_usage" on total_tokens (filterable by model and provider), a
 * plan "ai" charging it, and an active subscription "sub-1" of customer "cus-1" started a minute ago.
 */
type ChargeSpec = Omit<NonNullable<PlanInput['charges']>[number], 'billable_metric_id'>

export async function seedCatalog (client: LagoClient, charge: ChargeSpec = { charge_model: 'standard', properties: { amount: '0.001' } }, aggregation: { aggregation_type: 'sum_agg' | 'count_agg', field_name?: string } = { aggregation_type: 'sum_agg', field_name: 'total_tokens' }) {
  const metric = await client.createBillableMetric({
    name: 'AI usage',
    code: 'ai_usage',
    ...aggregation,
    filters: [{ key: 'model', values: ['gpt-4o', 'claude-3'] }, { key: 'provider', values: ['openai', 'anthropic'] }]
  })
  const plan = await client.createPlan({
    name: 'AI',
    code: 'ai',
    interval: 'monthly',
    amount_cents: 0,
    amount_currency: 'USD',
    pay_in_advance: false,
    charges: [{ billable_metric_id: metric.lago_id, ...charge }]
  })
  const subscription = await client.createSubscription({
    external_customer_id: 'cus-1',
    plan_code: 'ai',
    external_id: 'sub-1',
    subscription_at: new Date(Date.now() - 60_000).toISOString()
  })
  return { metric, plan, subscription }
}
