import { sql, type Kysely } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../../../db/database.js'
import type { CallOptions } from '../lago/client.js'
import { LagoApiError, classifyLagoError } from '../lago/errors.js'
import type { CustomerInput, SubscriptionInput, SubscriptionListQuery } from '../lago/types.js'

/** The part of the Lago client this needs. */
export interface LagoSubscriptionsApi {
  upsertCustomer: (customer: CustomerInput, options?: CallOptions) => Promise<{ lago_id: string }>
  createSubscription: (subscription: SubscriptionInput, options?: CallOptions) => Promise<{ external_id: string, plan_code: string }>
  listSubscriptions: (query?: SubscriptionListQuery, options?: CallOptions) => Promise<{ subscriptions: Array<{ external_id: string, plan_code: string, status?: string }> }>
}

const PROVISIONING_CONCURRENCY = 4
const BACKDATE_LIMIT_MS = 24 * 3600 * 1000

export type Resolution = { subscription: string } | { unmapped: string }

/**
 * Serializes the provisioning of one customer's subscription across requests and replicas: a transaction-scoped
 * advisory lock on the customer id. Whoever holds it re-reads the customers table before calling Lago.
 */
export async function lockCustomer (trx: Kysely<Database>, customerId: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`customer:${customerId}`}, 0))`.execute(trx)
}

/**
 * When a customer's first subscription should start. Lago bills only events inside the subscription: start it
 * at the customer's first stored event (typically seconds ago), but never more than a day back, which would
 * reach into periods Lago has already invoiced.
 */
export async function subscriptionStart (db: Kysely<Database>, customerId: string, now = Date.now()): Promise<Date> {
  const first = await db.selectFrom('litellm_usage_events').select((eb) => eb.fn.min('timestamp').as('first'))
    .where('customer_external_id', '=', customerId).executeTakeFirst()
  const firstAt = first?.first != null ? new Date(first.first).getTime() : now
  return new Date(Math.min(now, Math.max(firstAt, now - BACKDATE_LIMIT_MS)))
}

/** The subscription this service knows for a customer (from the customers table), if any. */
export async function knownSubscription (db: Kysely<Database>, customerId: string): Promise<string | null> {
  const row = await db.selectFrom('customers').select('subscription_external_id').where('external_id', '=', customerId).executeTakeFirst()
  return row?.subscription_external_id ?? null
}

/** Records which subscription a customer's usage goes to, and who set it up (forwarder, lago or api). */
export async function rememberSubscription (db: Kysely<Database>, customerId: string, subscription: string, planCode: string, by: string): Promise<void> {
  await db.insertInto('customers')
    .values({ external_id: customerId, subscription_external_id: subscription, plan_code: planCode, provisioned_by: by })
    .onConflict((oc) => oc.column('external_id').doUpdateSet({ subscription_external_id: subscription, plan_code: planCode, updated_at: new Date() }))
    .execute()
}

export interface SubscriptionResolverOptions {
  db: Kysely<Database>
  lago: LagoSubscriptionsApi
  log: FastifyBaseLogger
  autoProvision: boolean
  planCode: string
}

/**
 * Finds the Lago subscription each customer's usage events go to:
 * 1. the local customers table (customers created through the API, or already resolved);
 * 2. else Lago itself: an active subscription of that customer (created in Lago directly);
 * 3. else, with AUTO_PROVISION_CUSTOMERS, a new Lago customer and a subscription to the default plan whose
 *    external_id is the customer's own id (the convention of LiteLLM's Lago callback);
 * 4. else unmapped, with the reason.
 * Steps 2–3 run once per customer even under concurrency: in-process by sharing the promise, across replicas
 * under a transaction-scoped advisory lock on the customer id, re-checking the table inside it.
 */
export class SubscriptionResolver {
  readonly #o: SubscriptionResolverOptions
  readonly #inFlight = new Map<string, Promise<Resolution>>()

  constructor (options: SubscriptionResolverOptions) {
    this.#o = options
  }

  async resolve (customerIds: string[]): Promise<Map<string, Resolution>> {
    const result = new Map<string, Resolution>()
    if (customerIds.length === 0) return result
    const known = await this.#o.db.selectFrom('customers').select(['external_id', 'subscription_external_id'])
      .where('external_id', 'in', customerIds).where('subscription_external_id', 'is not', null).execute()
    for (const c of known) result.set(c.external_id, { subscription: c.subscription_external_id as string })
    const missing = customerIds.filter((id) => !result.has(id))
    // A few at a time: each holds a pooled connection (the advisory lock's transaction) during Lago calls.
    // Lago errors (unreachable, refused key) propagate: the caller decides between pausing and retrying.
    for (let i = 0; i < missing.length; i += PROVISIONING_CONCURRENCY) {
      const slice = missing.slice(i, i + PROVISIONING_CONCURRENCY)
      const resolved = await Promise.all(slice.map(async (id) => [id, await this.#resolveOne(id)] as const))
      for (const [id, r] of resolved) result.set(id, r)
    }
    return result
  }

  #resolveOne (customerId: string): Promise<Resolution> {
    let pending = this.#inFlight.get(customerId)
    if (pending === undefined) {
      pending = this.#lookUpOrProvision(customerId).finally(() => this.#inFlight.delete(customerId))
      this.#inFlight.set(customerId, pending)
    }
    return pending
  }

  async #lookUpOrProvision (customerId: string): Promise<Resolution> {
    return await this.#o.db.transaction().execute(async (trx) => {
      await lockCustomer(trx, customerId)
      const known = await knownSubscription(trx, customerId)
      if (known !== null) return { subscription: known }

      const { subscriptions } = await this.#o.lago.listSubscriptions({ external_customer_id: customerId, 'status[]': ['active'] })
      const active = subscriptions.find((s) => s.status === undefined || s.status === 'active')
      if (active !== undefined) {
        await rememberSubscription(trx, customerId, active.external_id, active.plan_code, 'lago')
        return { subscription: active.external_id }
      }
      if (!this.#o.autoProvision) {
        return { unmapped: `customer "${customerId}" has no active Lago subscription; create it (POST /api/customers with a plan_code) or set AUTO_PROVISION_CUSTOMERS=true` }
      }
      const startsAt = await subscriptionStart(trx, customerId)
      try {
        await this.#o.lago.upsertCustomer({ external_id: customerId })
        const subscription = await this.#o.lago.createSubscription({
          external_customer_id: customerId,
          plan_code: this.#o.planCode,
          external_id: customerId,
          subscription_at: startsAt.toISOString()
        })
        await rememberSubscription(trx, customerId, subscription.external_id, subscription.plan_code, 'forwarder')
        this.#o.log.info({ customer: customerId, plan: subscription.plan_code }, 'created the Lago customer and subscription for a new customer')
        return { subscription: subscription.external_id }
      } catch (err) {
        // Lago answered but will not create it (plan missing, external_id taken...): wait as unmapped.
        if (err instanceof LagoApiError && classifyLagoError(err) === 'permanent') {
          return { unmapped: `could not create a Lago subscription for "${customerId}" on plan ${this.#o.planCode}: ${err.message}` }
        }
        throw err
      }
    })
  }
}
