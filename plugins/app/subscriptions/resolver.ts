import { randomUUID } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import type { FastifyBaseLogger } from 'fastify'
import { DEFAULT_ORGANIZATION_ID, type Database } from '../../../db/database.js'
import { knownSubscription, rememberSubscription } from '../../../db/customers.js'
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

/** A provisioning claim: who holds it, and the id that proves it (see claimProvisioning). */
export interface ProvisioningClaim { customerId: string, claimId: string, organizationId: string }

const CLAIM_POLL_MS = 100

/** A claim outlives the Lago calls made under it (at most three, each bounded by LAGO_TIMEOUT_MS), with margin. */
export const provisioningClaimTtlMs = (lagoTimeoutMs: number): number => 4 * lagoTimeoutMs + 5000

/**
 * Serializes the provisioning of one customer's subscription across requests and replicas without holding a
 * connection: a row in customer_provisioning_claims, taken in one statement when free or expired. Its holder
 * calls Lago with no transaction open, then records the result and releases the claim. Waiters poll (short
 * queries, nothing held in between); an abandoned claim (crashed holder) is taken over once it expires, which
 * `ttlMs` must put after the holder's last possible Lago call.
 */
export async function claimProvisioning (db: Kysely<Database>, customerId: string, by: string, ttlMs: number, organizationId = DEFAULT_ORGANIZATION_ID): Promise<ProvisioningClaim> {
  const claimId = randomUUID()
  for (;;) {
    const { rows } = await sql<{ claim_id: string }>`
      INSERT INTO customer_provisioning_claims (organization_id, customer_external_id, claim_id, claimed_by, claimed_until)
      VALUES (${organizationId}, ${customerId}, ${claimId}, ${by}, now() + ${ttlMs} * interval '1 millisecond')
      ON CONFLICT (organization_id, customer_external_id) DO UPDATE
        SET claim_id = EXCLUDED.claim_id, claimed_by = EXCLUDED.claimed_by, claimed_until = EXCLUDED.claimed_until
        WHERE customer_provisioning_claims.claimed_until < now()
      RETURNING claim_id`.execute(db)
    if (rows.length > 0) return { customerId, claimId, organizationId }
    await new Promise((resolve) => setTimeout(resolve, CLAIM_POLL_MS))
  }
}

/** Gives the claim back (a no-op when it expired and someone else took it). */
export async function releaseProvisioning (db: Kysely<Database>, claim: ProvisioningClaim): Promise<void> {
  await sql`DELETE FROM customer_provisioning_claims
            WHERE organization_id = ${claim.organizationId} AND customer_external_id = ${claim.customerId} AND claim_id = ${claim.claimId}`.execute(db)
}

/** Records the subscription and releases the claim, in one short transaction. */
export async function recordProvisioned (db: Kysely<Database>, claim: ProvisioningClaim, subscription: string, planCode: string, by: string): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await rememberSubscription(trx, claim.customerId, subscription, planCode, by, claim.organizationId)
    await releaseProvisioning(trx, claim)
  })
}

/**
 * When a customer's first subscription should start. Lago bills only events inside the subscription: start it
 * at the customer's first stored event (typically seconds ago), but never more than a day back, which would
 * reach into periods Lago has already invoiced.
 */
export async function subscriptionStart (db: Kysely<Database>, customerId: string, now = Date.now(), organizationId = DEFAULT_ORGANIZATION_ID): Promise<Date> {
  const first = await db.selectFrom('litellm_usage_events').select((eb) => eb.fn.min('timestamp').as('first'))
    .where('organization_id', '=', organizationId).where('customer_external_id', '=', customerId).executeTakeFirst()
  const firstAt = first?.first != null ? new Date(first.first).getTime() : now
  return new Date(Math.min(now, Math.max(firstAt, now - BACKDATE_LIMIT_MS)))
}

export interface SubscriptionResolverOptions {
  db: Kysely<Database>
  /** Whose customers these are (default when not named); `lago` is that organization's Lago. */
  organization?: string
  lago: LagoSubscriptionsApi
  log: FastifyBaseLogger
  autoProvision: boolean
  planCode: string
  /** How long a provisioning claim lasts: longer than the Lago calls made under it (see claimProvisioning). */
  claimTtlMs: number
}

/**
 * Finds the Lago subscription each customer's usage events go to:
 * 1. the local customers table (customers created through the API, or already resolved);
 * 2. else Lago itself: an active subscription of that customer (created in Lago directly);
 * 3. else, with AUTO_PROVISION_CUSTOMERS, a new Lago customer and a subscription to the default plan whose
 *    external_id is the customer's own id (the convention of LiteLLM's Lago callback);
 * 4. else unmapped, with the reason.
 * Steps 2–3 run once per customer even under concurrency: in-process by sharing the promise, across replicas
 * under a provisioning claim, re-checking the table once it holds it. No transaction is open during Lago calls.
 */
export class SubscriptionResolver {
  readonly #o: SubscriptionResolverOptions
  readonly #inFlight = new Map<string, Promise<Resolution>>()

  constructor (options: SubscriptionResolverOptions) {
    this.#o = options
  }

  get #organization (): string {
    return this.#o.organization ?? DEFAULT_ORGANIZATION_ID
  }

  async resolve (customerIds: string[]): Promise<Map<string, Resolution>> {
    const result = new Map<string, Resolution>()
    if (customerIds.length === 0) return result
    const known = await this.#o.db.selectFrom('customers').select(['external_id', 'subscription_external_id'])
      .where('organization_id', '=', this.#organization).where('external_id', 'in', customerIds).where('subscription_external_id', 'is not', null).execute()
    for (const c of known) result.set(c.external_id, { subscription: c.subscription_external_id as string })
    const missing = customerIds.filter((id) => !result.has(id))
    // A few at a time, to spare Lago; no pooled connection is held while Lago answers.
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
    const { db, lago } = this.#o
    const organization = this.#organization
    const claim = await claimProvisioning(db, customerId, 'forwarder', this.#o.claimTtlMs, organization)
    try {
      const known = await knownSubscription(db, customerId, organization)
      if (known !== null) return { subscription: known }
      const startsAt = await subscriptionStart(db, customerId, Date.now(), organization)

      // Outside any transaction: these calls are idempotent (a subscription is looked up and created by its
      // external id, a customer is upserted), so a holder that dies half-way leaves nothing a retry cannot finish.
      const { subscriptions } = await lago.listSubscriptions({ external_customer_id: customerId, 'status[]': ['active'] })
      const active = subscriptions.find((s) => s.status === undefined || s.status === 'active')
      if (active !== undefined) {
        await recordProvisioned(db, claim, active.external_id, active.plan_code, 'lago')
        return { subscription: active.external_id }
      }
      if (!this.#o.autoProvision) {
        return { unmapped: `customer "${customerId}" has no active Lago subscription; create it (POST /api/customers with a plan_code) or set AUTO_PROVISION_CUSTOMERS=true` }
      }
      try {
        await lago.upsertCustomer({ external_id: customerId })
        const subscription = await lago.createSubscription({
          external_customer_id: customerId,
          plan_code: this.#o.planCode,
          external_id: customerId,
          subscription_at: startsAt.toISOString()
        })
        await recordProvisioned(db, claim, subscription.external_id, subscription.plan_code, 'forwarder')
        this.#o.log.info({ organization, customer: customerId, plan: subscription.plan_code }, 'created the Lago customer and subscription for a new customer')
        return { subscription: subscription.external_id }
      } catch (err) {
        // Lago answered but will not create it (plan missing, external_id taken...): wait as unmapped.
        if (err instanceof LagoApiError && classifyLagoError(err) === 'permanent') {
          return { unmapped: `could not create a Lago subscription for "${customerId}" on plan ${this.#o.planCode}: ${err.message}` }
        }
        throw err
      }
    } finally {
      await releaseProvisioning(db, claim).catch((err: unknown) => this.#o.log.warn({ err, customer: customerId }, 'could not release a provisioning claim; it expires on its own'))
    }
  }
}
