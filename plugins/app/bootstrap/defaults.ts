import type { CallOptions } from '../lago/client.js'
import { LagoApiError } from '../lago/errors.js'
import type { BillableMetricInput, PlanInput } from '../lago/types.js'

/** The part of the Lago client bootstrap needs. */
export interface LagoCatalogApi {
  getBillableMetric: (code: string, options?: CallOptions) => Promise<{ lago_id: string, code: string }>
  createBillableMetric: (metric: BillableMetricInput, options?: CallOptions) => Promise<{ lago_id: string, code: string }>
  getPlan: (code: string, options?: CallOptions) => Promise<{ code: string }>
  createPlan: (plan: PlanInput, options?: CallOptions) => Promise<{ code: string }>
}

export interface BillingDefaults {
  metricCode: string
  planCode: string
  interval: PlanInput['interval']
  amountCents: number
  currency: string
  chargeModel: 'standard' | 'dynamic'
  unitAmount: string
}

export type Ensured = 'created' | 'existing'

const notFound = (err: unknown): boolean => err instanceof LagoApiError && err.status === 404
const alreadyExists = (err: unknown): boolean =>
  err instanceof LagoApiError && err.status === 422 && JSON.stringify(err.errorDetails ?? {}).includes('value_already_exist')

/** Reads a resource, creating it when missing; a concurrent creation (another replica) counts as existing. */
async function ensure<T> (get: () => Promise<T>, create: () => Promise<T>): Promise<[T, Ensured]> {
  try {
    return [await get(), 'existing']
  } catch (err) {
    if (!notFound(err)) throw err
  }
  try {
    return [await create(), 'created']
  } catch (err) {
    if (!alreadyExists(err)) throw err
    return [await get(), 'existing']
  }
}

/**
 * Makes sure Lago has the default billable metric (sum of total_tokens; model and provider travel as event
 * properties) and the default plan charging it. Safe to run any number of times, from any number of replicas.
 * Existing resources are never modified: what an operator changed in Lago stays.
 */
export async function ensureBillingDefaults (lago: LagoCatalogApi, d: BillingDefaults): Promise<{ metric: Ensured, plan: Ensured }> {
  const [metric, metricState] = await ensure(
    async () => await lago.getBillableMetric(d.metricCode),
    async () => await lago.createBillableMetric({
      name: 'AI usage (tokens)',
      code: d.metricCode,
      description: 'Tokens used by LLM calls through LiteLLM (sum of total_tokens); model and provider are event properties',
      aggregation_type: 'sum_agg',
      field_name: 'total_tokens',
      recurring: false
    })
  )
  const charge = d.chargeModel === 'dynamic'
    // Bills the exact cost LiteLLM reported, carried by each event's precise_total_amount_cents.
    ? { billable_metric_id: metric.lago_id, charge_model: 'dynamic' as const, invoice_display_name: 'AI usage', properties: {} }
    // Per-token price, with one fee line per model and provider on the invoice.
    : { billable_metric_id: metric.lago_id, charge_model: 'standard' as const, invoice_display_name: 'AI usage', properties: { amount: d.unitAmount, pricing_group_keys: ['model', 'provider'] } }
  const [, planState] = await ensure(
    async () => await lago.getPlan(d.planCode),
    async () => await lago.createPlan({
      name: 'AI usage',
      code: d.planCode,
      interval: d.interval,
      amount_cents: d.amountCents,
      amount_currency: d.currency as PlanInput['amount_currency'],
      pay_in_advance: false,
      description: 'Usage-based billing of LLM calls',
      charges: [charge]
    } as PlanInput)
  )
  return { metric: metricState, plan: planState }
}
