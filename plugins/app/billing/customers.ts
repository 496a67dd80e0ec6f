import type { Kysely } from 'kysely'
import { DEFAULT_ORGANIZATION_ID, type Database } from '../../../db/database.js'
import type { LagoClient } from '../lago/client.js'
import type { CustomerInput, CustomerObjectExtended, SubscriptionObject } from '../lago/types.js'
import { orNotFound } from '../lago/http-errors.js'
import { claimProvisioning, recordProvisioned, releaseProvisioning, subscriptionStart } from '../subscriptions/resolver.js'
import { forgetCustomer, forgetPlanSubscriptions, knownSubscription, rememberCustomer } from '../../../db/customers.js'
import { CustomerNotFoundError, PlanNotFoundError } from '../../../schemas/errors.js'
import type { CustomerBody, CustomerCreateBody, CustomerListBody, CustomerUpdateBody } from '../../../schemas/customers.js'
import type { LagoReadCache } from './cache.js'
import { currentSubscription, toCustomerSummary, toPageMeta, toSubscription } from './mapping.js'

export interface CustomerServiceOptions {
  db: Kysely<Database>
  /** The organization whose customers these are (its Lago is `lago`); default when unset. */
  organizationId?: string
  lago: LagoClient
  cache: LagoReadCache
  /** Sends the usage events that were waiting for these customers' subscription. */
  releaseUnmapped: (customerIds: string[]) => Promise<number>
  /** Throws PlanNotFoundError unless the plan exists. */
  requirePlan: (code: string) => Promise<unknown>
  /** How long a provisioning claim lasts (see claimProvisioning). */
  claimTtlMs: number
}

type CustomerFields = Omit<CustomerCreateBody, 'external_id' | 'plan_code'>

const LIVE_STATUSES: Array<'active' | 'pending'> = ['active', 'pending']

function lagoCustomerInput (id: string, { currency, ...fields }: CustomerFields): CustomerInput {
  // Lago knows which ISO 4217 codes it bills in: an unknown one is its 422.
  return { external_id: id, ...fields, ...(currency !== undefined ? { currency: currency as CustomerInput['currency'] } : {}) }
}

/**
 * Lago customers and their subscription, kept in step with the local customers table (which tells the
 * forwarder where each customer's usage events go). A customer's subscription has the customer's external_id
 * as its own external_id, the convention of the forwarder and of LiteLLM's Lago callback.
 */
export class CustomerService {
  readonly #o: CustomerServiceOptions
  readonly #org: string

  constructor (options: CustomerServiceOptions) {
    this.#o = options
    this.#org = options.organizationId ?? DEFAULT_ORGANIZATION_ID
  }

  /** Creates the customer or updates the fields sent; with plan_code, subscribes it (or changes its plan). */
  async upsert (input: CustomerCreateBody): Promise<CustomerBody> {
    const { external_id: id, plan_code: planCode, ...fields } = input
    // An unknown plan is refused before anything is written.
    if (planCode !== undefined) await this.#o.requirePlan(planCode)
    const customer = await this.#o.lago.upsertCustomer(lagoCustomerInput(id, fields))
    return await this.#afterWrite(customer, planCode)
  }

  /** Changes the fields sent of an existing customer; plan_code changes (or starts) its subscription. */
  async update (id: string, patch: CustomerUpdateBody): Promise<CustomerBody> {
    const { plan_code: planCode, ...fields } = patch
    // Lago's POST /customers would create an unknown customer: a PATCH must not.
    let customer = await this.#lagoCustomer(id)
    if (planCode !== undefined) await this.#o.requirePlan(planCode)
    if (Object.keys(fields).length > 0) customer = await this.#o.lago.upsertCustomer(lagoCustomerInput(id, fields))
    return await this.#afterWrite(customer, planCode)
  }

  async get (id: string): Promise<CustomerBody> {
    return await this.#o.cache.item('customer', id, async () => {
      const [customer, subscriptions] = await Promise.all([this.#lagoCustomer(id), this.#liveSubscriptions(id)])
      const known = await knownSubscription(this.#o.db, id, this.#org)
      const current = currentSubscription(subscriptions, known)
      return { ...toCustomerSummary(customer), subscription: current !== null ? toSubscription(current) : null }
    })
  }

  async list (page: number, perPage: number, search?: string): Promise<CustomerListBody> {
    return await this.#o.cache.page('customers', JSON.stringify([page, perPage, search ?? null]), async () => {
      const result = await this.#o.lago.listCustomers({ page, per_page: perPage, ...(search !== undefined ? { search_term: search } : {}) })
      return { customers: result.customers.map(toCustomerSummary), meta: toPageMeta(result.meta, page, perPage) }
    })
  }

  /**
   * Deletes the customer in Lago, which terminates its subscriptions (and invoices what they owe); its invoices
   * and the usage events stored here stay. Its usage events from now on are treated as an unknown customer's.
   */
  async remove (id: string): Promise<CustomerBody> {
    const customer = await orNotFound(this.#o.lago.deleteCustomer(id), () => new CustomerNotFoundError(id))
    await forgetCustomer(this.#o.db, id, this.#org)
    await this.#invalidate([id])
    return { ...toCustomerSummary(customer), subscription: null }
  }

  /** Drops cached customers (and every cached page of the list). */
  async #invalidate (ids: string[]): Promise<void> {
    await this.#o.cache.invalidate({ items: ids.map((id) => ['customer', id]), collections: ['customers'] })
  }

  /** Forgets which subscription these customers' usage goes to (their subscriptions were terminated). */
  async forgetSubscriptions (planCode: string): Promise<void> {
    await this.#invalidate(await forgetPlanSubscriptions(this.#o.db, planCode, this.#org))
  }

  async #afterWrite (written: CustomerObjectExtended, planCode: string | undefined): Promise<CustomerBody> {
    const id = written.external_id
    let customer = written
    let subscription: SubscriptionObject | null
    if (planCode !== undefined) {
      subscription = await this.#subscribe(id, planCode)
      // A first subscription sets the customer's currency.
      customer = await this.#lagoCustomer(id)
    } else {
      subscription = currentSubscription(await this.#liveSubscriptions(id), await knownSubscription(this.#o.db, id, this.#org))
    }
    await rememberCustomer(this.#o.db, { externalId: id, lagoId: customer.lago_id, name: customer.name ?? null, email: customer.email ?? null }, 'api', this.#org)
    await this.#invalidate([id])
    if (planCode !== undefined) await this.#o.releaseUnmapped([id])
    return { ...toCustomerSummary(customer), subscription: subscription !== null ? toSubscription(subscription) : null }
  }

  /**
   * Subscribes the customer to the plan, or changes the plan of its subscription (Lago: the same external_id with
   * another plan_code), under the provisioning claim the forwarder takes to auto-provision the same customer, so
   * that the two never race into two plans. No transaction is open during the Lago calls.
   */
  async #subscribe (id: string, planCode: string): Promise<SubscriptionObject> {
    const { db } = this.#o
    const claim = await claimProvisioning(db, id, 'api', this.#o.claimTtlMs, this.#org)
    try {
      const existing = await knownSubscription(db, id, this.#org) ?? currentSubscription(await this.#liveSubscriptions(id), null)?.external_id ?? null
      // A first subscription starts early enough to bill the usage events that were waiting for it.
      const startsAt = existing === null ? await subscriptionStart(db, id, Date.now(), this.#org) : null
      const subscription = await orNotFound(this.#o.lago.createSubscription({
        external_customer_id: id,
        plan_code: planCode,
        external_id: existing ?? id,
        ...(startsAt !== null ? { subscription_at: startsAt.toISOString() } : {})
      }), () => new PlanNotFoundError(planCode))
      await recordProvisioned(db, claim, subscription.external_id, subscription.plan_code, 'api')
      return subscription
    } finally {
      await releaseProvisioning(db, claim)
    }
  }

  async #lagoCustomer (id: string): Promise<CustomerObjectExtended> {
    return await orNotFound(this.#o.lago.getCustomer(id), () => new CustomerNotFoundError(id))
  }

  async #liveSubscriptions (id: string): Promise<SubscriptionObject[]> {
    const { subscriptions } = await this.#o.lago.listSubscriptions({ external_customer_id: id, 'status[]': LIVE_STATUSES, per_page: 100 })
    return subscriptions
  }
}
