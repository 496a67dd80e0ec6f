import { sql, type Kysely } from 'kysely'
import type { Database } from '../../../db/database.js'
import { Decimal } from '../lago/decimal.js'
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
  key: string
  total_requests: number
  total_input_tokens: number
  total_output_tokens: number
  total_tokens: number
  total_cost_usd: string
}

export interface UsageServiceOptions {
  db: Kysely<Database>
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
    const { rows } = await sql<UsageRow>`
      SELECT ${sql.ref(fn.key)}::text AS key, total_requests, total_input_tokens, total_output_tokens, total_tokens, total_cost_usd
        FROM ${sql.raw(fn.name)}(${customerId}, ${from}, ${to})`.execute(this.o.db)
    const groups: UsageGroupBody[] = rows.map((r) => ({
      key: r.key,
      requests: r.total_requests,
      input_tokens: r.total_input_tokens,
      output_tokens: r.total_output_tokens,
      total_tokens: r.total_tokens,
      cost_usd: Decimal.from(r.total_cost_usd).toString()
    }))
    const sum = (pick: (g: UsageGroupBody) => number): number => groups.reduce((n, g) => n + pick(g), 0)
    return {
      customer_external_id: customerId,
      from: from.toISOString(),
      to: to.toISOString(),
      group_by: groupBy,
      totals: {
        requests: sum((g) => g.requests),
        input_tokens: sum((g) => g.input_tokens),
        output_tokens: sum((g) => g.output_tokens),
        total_tokens: sum((g) => g.total_tokens),
        cost_usd: Decimal.sum(groups.map((g) => Decimal.from(g.cost_usd))).toString()
      },
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

  async #activeSubscription (customerId: string): Promise<string | undefined> {
    const customer = await this.o.getCustomer(customerId)
    return customer.subscription?.status === 'active' ? customer.subscription.external_id : undefined
  }
}
