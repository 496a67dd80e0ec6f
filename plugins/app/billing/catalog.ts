import type { LagoClient } from '../lago/client.js'
import type { PlanInput, PlanUpdate } from '../lago/types.js'
import { orNotFound } from '../lago/http-errors.js'
import { BillableMetricNotFoundError, PlanNotFoundError } from '../../../schemas/errors.js'
import type { MetricBody, MetricCreateBody, MetricListBody } from '../../../schemas/billable-metrics.js'
import type { ChargeInputBody, PlanBody, PlanCreateBody, PlanListBody, PlanUpdateBody } from '../../../schemas/plans.js'
import type { LagoReadCache } from './cache.js'
import { toMetric, toPageMeta, toPlan } from './mapping.js'

export interface CatalogServiceOptions {
  lago: LagoClient
  cache: LagoReadCache
  /** Called after a plan is deleted: Lago terminated its subscriptions. */
  onPlanDeleted: (code: string) => Promise<void>
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

type LagoCharge = NonNullable<PlanInput['charges']>[number]

/** Lago's billable metrics and plans. */
export class CatalogService {
  readonly #o: CatalogServiceOptions

  constructor (options: CatalogServiceOptions) {
    this.#o = options
  }

  // ---- billable metrics ----------------------------------------------------------------------------------

  async createMetric (input: MetricCreateBody): Promise<MetricBody> {
    const metric = toMetric(await this.#o.lago.createBillableMetric({
      ...input,
      aggregation_type: input.aggregation_type as Parameters<LagoClient['createBillableMetric']>[0]['aggregation_type']
    }))
    await this.#o.cache.invalidate({ items: [['metric', metric.code]], collections: ['metrics'] })
    return metric
  }

  async getMetric (code: string): Promise<MetricBody> {
    return await this.#o.cache.item('metric', code, async () =>
      toMetric(await orNotFound(this.#o.lago.getBillableMetric(code), () => new BillableMetricNotFoundError(`"${code}"`))))
  }

  async listMetrics (page: number, perPage: number): Promise<MetricListBody> {
    return await this.#o.cache.page('metrics', JSON.stringify([page, perPage]), async () => {
      const result = await this.#o.lago.listBillableMetrics({ page, per_page: perPage })
      return { billable_metrics: result.billable_metrics.map(toMetric), meta: toPageMeta(result.meta, page, perPage) }
    })
  }

  // ---- plans ---------------------------------------------------------------------------------------------

  async createPlan (input: PlanCreateBody): Promise<PlanBody> {
    const { charges, ...fields } = input
    const lagoCharges = charges !== undefined ? await this.#lagoCharges(charges) : undefined
    // A billable_metric_id (a UUID) that names no metric.
    const plan = toPlan(await orNotFound(this.#o.lago.createPlan({
      ...fields,
      amount_currency: fields.amount_currency as PlanInput['amount_currency'],
      interval: fields.interval as PlanInput['interval'],
      pay_in_advance: fields.pay_in_advance ?? false,
      ...(lagoCharges !== undefined ? { charges: lagoCharges } : {})
    }), () => new BillableMetricNotFoundError(metricIdsOf(charges)), 'billable_metric_not_found'))
    await this.#o.cache.invalidate({ items: [['plan', plan.code]], collections: ['plans'] })
    return plan
  }

  async getPlan (code: string): Promise<PlanBody> {
    return await this.#o.cache.item('plan', code, async () =>
      toPlan(await orNotFound(this.#o.lago.getPlan(code), () => new PlanNotFoundError(code))))
  }

  async listPlans (page: number, perPage: number): Promise<PlanListBody> {
    return await this.#o.cache.page('plans', JSON.stringify([page, perPage]), async () => {
      const result = await this.#o.lago.listPlans({ page, per_page: perPage })
      return { plans: result.plans.map(toPlan), meta: toPageMeta(result.meta, page, perPage) }
    })
  }

  async updatePlan (code: string, patch: PlanUpdateBody): Promise<PlanBody> {
    const { charges, ...fields } = patch
    // The plan first: an unknown plan is a 404 whatever the charges say.
    await orNotFound(this.#o.lago.getPlan(code), () => new PlanNotFoundError(code))
    const lagoCharges = charges !== undefined ? await this.#lagoCharges(charges) : undefined
    const plan = toPlan(await orNotFound(this.#o.lago.updatePlan(code, {
      ...fields,
      ...(lagoCharges !== undefined ? { charges: lagoCharges } : {})
    } as PlanUpdate), () => new BillableMetricNotFoundError(metricIdsOf(charges)), 'billable_metric_not_found'))
    await this.#o.cache.invalidate({ items: [['plan', code]], collections: ['plans'] })
    return plan
  }

  /** Deletes the plan; Lago terminates its subscriptions. */
  async deletePlan (code: string): Promise<PlanBody> {
    const plan = toPlan(await orNotFound(this.#o.lago.deletePlan(code), () => new PlanNotFoundError(code)))
    await this.#o.cache.invalidate({ items: [['plan', code]], collections: ['plans'] })
    await this.#o.onPlanDeleted(code)
    return plan
  }

  /** Charges as Lago takes them: a billable metric named by its code is looked up for its lago_id. */
  async #lagoCharges (charges: ChargeInputBody[]): Promise<LagoCharge[]> {
    return await Promise.all(charges.map(async (charge): Promise<LagoCharge> => {
      const metricId = UUID.test(charge.billable_metric_id) ? charge.billable_metric_id : (await this.getMetric(charge.billable_metric_id)).lago_id
      return { ...charge, billable_metric_id: metricId, properties: charge.properties ?? {} } as LagoCharge
    }))
  }
}

const metricIdsOf = (charges: ChargeInputBody[] | undefined): string =>
  (charges ?? []).map((c) => `"${c.billable_metric_id}"`).filter((v, i, all) => all.indexOf(v) === i).join(' or ') || '(none)'
