import { sql, type Kysely } from 'kysely'
import { DEFAULT_ORGANIZATION_ID, type Database } from './database.js'

// The customers table's one repository: who pays (external_id), which Lago subscription their usage goes to, and
// who set it up (provisioned_by: forwarder, api, lago). Every write to the table is here. A customer belongs to one
// organization: every function takes it (last, default: the default organization).

/** The subscription this service knows for a customer (from the customers table), if any. */
export async function knownSubscription (db: Kysely<Database>, customerId: string, organizationId = DEFAULT_ORGANIZATION_ID): Promise<string | null> {
  const row = await db.selectFrom('customers').select('subscription_external_id')
    .where('organization_id', '=', organizationId).where('external_id', '=', customerId).executeTakeFirst()
  return row?.subscription_external_id ?? null
}

/** Records which subscription a customer's usage goes to, and who set it up (forwarder, lago or api). */
export async function rememberSubscription (db: Kysely<Database>, customerId: string, subscription: string, planCode: string, by: string, organizationId = DEFAULT_ORGANIZATION_ID): Promise<void> {
  await db.insertInto('customers')
    .values({ organization_id: organizationId, external_id: customerId, subscription_external_id: subscription, plan_code: planCode, provisioned_by: by })
    .onConflict((oc) => oc.columns(['organization_id', 'external_id']).doUpdateSet({ subscription_external_id: subscription, plan_code: planCode, updated_at: new Date() }))
    .execute()
}

export interface SubscriptionFacts {
  lagoId: string | null
  externalId: string
  customerExternalId: string
  planCode: string | null
  status: string
  startedAt: string | null
  endedAt: string | null
}

/**
 * Lago terminated or canceled a subscription: if it is the one this customer's usage goes to, forget it, and say
 * why, so new events wait as unmapped instead of going to a subscription that bills nothing. Returns whether the
 * customer's subscription changed.
 */
export async function forgetEndedSubscription (db: Kysely<Database>, s: SubscriptionFacts, organizationId = DEFAULT_ORGANIZATION_ID): Promise<boolean> {
  const reason = `Lago ${s.status} subscription "${s.externalId}"${s.endedAt !== null ? ` at ${s.endedAt}` : ''}: new usage waits until the customer has an active subscription (POST /api/customers with a plan_code, or one created in Lago)`
  const { numAffectedRows } = await sql`
    UPDATE customers
       SET subscription_external_id = NULL, plan_code = NULL, subscription_lago_id = NULL,
           subscription_ended_at = coalesce(${s.endedAt}::timestamptz, now()), subscription_ended_reason = ${reason}, updated_at = now()
     WHERE organization_id = ${organizationId} AND external_id = ${s.customerExternalId} AND subscription_external_id = ${s.externalId}
       AND (subscription_lago_id IS NULL OR ${s.lagoId}::text IS NULL OR subscription_lago_id = ${s.lagoId})`.execute(db)
  return Number(numAffectedRows ?? 0) > 0
}

/**
 * Lago started a subscription: it becomes the customer's when the customer has none (or had this one), and the
 * customer's "ended" mark goes. Returns whether usage may now flow to it.
 */
export async function rememberStartedSubscription (db: Kysely<Database>, s: SubscriptionFacts, organizationId = DEFAULT_ORGANIZATION_ID): Promise<boolean> {
  const { numAffectedRows } = await sql`
    INSERT INTO customers (organization_id, external_id, subscription_external_id, plan_code, subscription_lago_id, subscription_started_at, provisioned_by)
    VALUES (${organizationId}, ${s.customerExternalId}, ${s.externalId}, ${s.planCode}, ${s.lagoId}, ${s.startedAt}::timestamptz, 'lago')
    ON CONFLICT (organization_id, external_id) DO UPDATE
       SET subscription_external_id = excluded.subscription_external_id, plan_code = coalesce(excluded.plan_code, customers.plan_code),
           subscription_lago_id = excluded.subscription_lago_id, subscription_started_at = excluded.subscription_started_at,
           subscription_ended_at = NULL, subscription_ended_reason = NULL, updated_at = now()
     WHERE customers.subscription_external_id IS NULL OR customers.subscription_external_id = excluded.subscription_external_id`.execute(db)
  return Number(numAffectedRows ?? 0) > 0
}

/** customer.created / customer.updated: the local record of a Lago customer. */
export async function rememberCustomer (db: Kysely<Database>, c: { externalId: string, lagoId: string | null, name: string | null, email: string | null }, by: 'lago' | 'api' = 'lago', organizationId = DEFAULT_ORGANIZATION_ID): Promise<void> {
  await db.insertInto('customers')
    .values({ organization_id: organizationId, external_id: c.externalId, lago_id: c.lagoId, name: c.name, email: c.email, provisioned_by: by })
    .onConflict((oc) => oc.columns(['organization_id', 'external_id']).doUpdateSet({ lago_id: c.lagoId, name: c.name, email: c.email, updated_at: new Date() }))
    .execute()
}

/** The customer is gone from Lago (deleted through the API): its usage from now on is an unknown customer's. */
export async function forgetCustomer (db: Kysely<Database>, externalId: string, organizationId = DEFAULT_ORGANIZATION_ID): Promise<void> {
  await db.deleteFrom('customers').where('organization_id', '=', organizationId).where('external_id', '=', externalId).execute()
}

/** Forgets which subscription the customers of a plan bill to (their subscriptions were terminated); returns them. */
export async function forgetPlanSubscriptions (db: Kysely<Database>, planCode: string, organizationId = DEFAULT_ORGANIZATION_ID): Promise<string[]> {
  const rows = await db.updateTable('customers')
    .set({ subscription_external_id: null, plan_code: null, updated_at: new Date() })
    .where('organization_id', '=', organizationId).where('plan_code', '=', planCode).returning('external_id').execute()
  return rows.map((r) => r.external_id)
}

/** Customers among these whose Lago subscription ended (and that have none now), with the reason. */
export async function endedCustomers (db: Kysely<Database>, customerIds: string[], organizationId = DEFAULT_ORGANIZATION_ID): Promise<Array<{ external_id: string, subscription_ended_reason: string | null }>> {
  return await db.selectFrom('customers').select(['external_id', 'subscription_ended_reason'])
    .where('organization_id', '=', organizationId).where('external_id', 'in', customerIds).where('subscription_external_id', 'is', null).where('subscription_ended_at', 'is not', null).execute()
}

/** A customer whose subscription ended takes another active one it has in Lago (if it still has none). */
export async function adoptSubscription (db: Kysely<Database>, customerId: string, s: { external_id: string, plan_code: string, lago_id?: string, started_at?: string | null }, organizationId = DEFAULT_ORGANIZATION_ID): Promise<void> {
  await sql`
    UPDATE customers SET subscription_external_id = ${s.external_id}, plan_code = ${s.plan_code},
           subscription_lago_id = ${s.lago_id ?? null}, subscription_started_at = ${s.started_at ?? null}::timestamptz,
           subscription_ended_at = NULL, subscription_ended_reason = NULL, updated_at = now()
     WHERE organization_id = ${organizationId} AND external_id = ${customerId} AND subscription_external_id IS NULL`.execute(db)
}

/** When Lago says the customer's subscription started (the billing audit reads it). */
export async function recordSubscriptionStart (db: Kysely<Database>, customerId: string, subscription: string, startedAt: Date, organizationId = DEFAULT_ORGANIZATION_ID): Promise<void> {
  await db.updateTable('customers').set({ subscription_started_at: startedAt })
    .where('organization_id', '=', organizationId).where('external_id', '=', customerId).where('subscription_external_id', '=', subscription).execute()
}
