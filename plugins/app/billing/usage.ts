import { sql, type Kysely } from 'kysely'
import { DEFAULT_ORGANIZATION_ID, type Database } from '../../../db/database.js'
import type { LagoClient } from '../lago/client.js'
import { LagoApiError } from '../lago/errors.js'
import { whenNotFound } from '../lago/http-errors.js'
import { CustomerNotFoundError, InvalidRangeError, NoActiveSubscriptionError } from '../../../schemas/errors.js'
import type { CurrentUsageBody, UsageGroupBody, UsageGroupByValue, UsageResponseBody } from '../../../schemas/usage.js'
import type { CustomerBody } from '../../../schemas/customers.js'
import { toCurrentUsage } from './mapping.js'

const DEFAULT_RANGE_MS = 30 * 24 * 3600 * 1000

/** The SQL function of each grouping (db/migrations), and its key column. */
const FUNCTIONS: Record<UsageGroupByValue, { name: string, key: string }> = {
  model: { name: 'aggregate_customer_usage', key: 'model' },
  provider: { name: 'aggregate_customer_usage_by_provider', key: 'provider' },
  day: { name: 'aggregate_customer_usage_by_day', key: 'day' }
}

interface UsageRow {
  /** null on the totals row */
  key: string | null
  total_requests: number
  total_input_tokens: number
  total_output_tokens: number
  total_tokens: number
  total_cost_usd: string
}

export interface UsageServiceOptions {
  db: Kysely<Database>
  /** The organization whose stored events are read; default when unset. */
  organizationId?: string
  lago: LagoClient
  getCustomer: (id: string) => Promise<CustomerBody>
}

/** A customer's usage: from the stored events (exact, whatever Lago has), and Lago's view of the open period. */
export class UsageService {
  constructor (private readonly o: UsageServiceOptions) {}

  async stored (customerId: string, range: { from?: string, to?: string, groupBy?: UsageGroupByValue }): Promise<UsageResponseBody> {
    const to = range.to !== undefined ? new Date(range.to) : new Date()
    const from = range.from !== undefined ? new Date(range.from) : new Date(to.getTime() - DEFAULT_RANGE_MS)
    if (from.getTime() >= to.getTime()) throw new InvalidRangeError(`from (${from.toISOString()}) must be before to (${to.toISOString()})`)
    const groupBy = range.groupBy ?? 'model'
    const fn = FUNCTIONS[groupBy]
    // Per group and in total (the empty grouping set), summed by PostgreSQL in numeric: exact, and nothing to
    // add up again here.
    const { rows } = await sql<UsageRow>`
      SELECT ${sql.ref(fn.key)}::text AS key,
             coalesce(sum(total_requests), 0)::bigint AS total_requests,
             coalesce(sum(total_input_tokens), 0)::bigint AS total_input_tokens,
             coalesce(sum(total_output_tokens), 0)::bigint AS total_output_tokens,
             coalesce(sum(total_tokens), 0)::bigint AS total_tokens,
             trim_scale(coalesce(sum(total_cost_usd), 0))::text AS total_cost_usd
        FROM ${sql.raw(fn.name)}(${customerId}, ${from}, ${to}, ${this.o.organizationId ?? DEFAULT_ORGANIZATION_ID})
       GROUP BY GROUPING SETS ((${sql.ref(fn.key)}), ())
       ORDER BY grouping(${sql.ref(fn.key)}), ${sql.ref(fn.key)}`.execute(this.o.db)
    const toBody = (r: UsageRow) => ({
      requests: r.total_requests,
      input_tokens: r.total_input_tokens,
      output_tokens: r.total_output_tokens,
      total_tokens: r.total_tokens,
      cost_usd: r.total_cost_usd
    })
    const totals = rows[rows.length - 1]
    // In a named organization, a customer it has never seen is a 404, as in Lago: another organization's customer
    // stays invisible, and an empty range of a known customer is still a 200. The default organization keeps its
    // single-organization answer (zeros), which reveals nothing of another organization either.
    const organizationId = this.o.organizationId ?? DEFAULT_ORGANIZATION_ID
    if (organizationId !== DEFAULT_ORGANIZATION_ID && Number(totals.total_requests) === 0 && !await this.#known(customerId)) {
      throw new CustomerNotFoundError(customerId)
    }
    const groups: UsageGroupBody[] = rows.slice(0, -1).map((r) => ({ key: r.key as string, ...toBody(r) }))
    return {
      customer_external_id: customerId,
      from: from.toISOString(),
      to: to.toISOString(),
      group_by: groupBy,
      totals: toBody(totals),
      groups
    }
  }

  /** What Lago's next invoice for the subscription says so far. */
  async current (customerId: string, subscriptionId?: string): Promise<CurrentUsageBody> {
    // With a subscription named, Lago's own answer says whether the customer exists: no lookup first.
    const subscription = subscriptionId ?? await this.#activeSubscription(customerId)
    if (subscription === undefined) throw new NoActiveSubscriptionError(customerId)
    try {
      return toCurrentUsage(customerId, subscription, await this.o.lago.getCurrentUsage(customerId, subscription))
    } catch (err) {
      // Lago's 405: no active subscription with that id for this customer.
      if (err instanceof LagoApiError && err.status === 405) throw new NoActiveSubscriptionError(customerId)
      throw whenNotFound(err, () => new CustomerNotFoundError(customerId))
    }
  }

  async #known (customerId: string): Promise<boolean> {
    const organizationId = this.o.organizationId ?? DEFAULT_ORGANIZATION_ID
    const { rows } = await sql<{ known: boolean }>`
      SELECT EXISTS (SELECT 1 FROM litellm_usage_events WHERE organization_id = ${organizationId} AND customer_external_id = ${customerId})
          OR EXISTS (SELECT 1 FROM customers WHERE organization_id = ${organizationId} AND external_id = ${customerId}) AS known`.execute(this.o.db)
    return rows[0].known
  }

  async #activeSubscription (customerId: string): Promise<string | undefined> {
    const customer = await this.o.getCustomer(customerId)
    return customer.subscription?.status === 'active' ? customer.subscription.external_id : undefined
  }
}
