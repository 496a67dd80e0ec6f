import type { Kysely } from 'kysely'
import type { Database } from '../../../db/database.js'
import { adoptSubscription, endedCustomers } from '../../../db/customers.js'
import type { CallOptions } from '../lago/client.js'
import type { SubscriptionListQuery } from '../lago/types.js'

type Resolution = { subscription: string } | { unmapped: string }
type Resolve = (customerIds: string[]) => Promise<Map<string, Resolution>>

export interface LagoActiveSubscriptionsApi {
  listSubscriptions: (query?: SubscriptionListQuery, options?: CallOptions) => Promise<{ subscriptions: Array<{ external_id: string, plan_code: string, status?: string, lago_id?: string, started_at?: string | null }> }>
}

/**
 * Wraps the subscription resolver so that a customer whose subscription Lago terminated or canceled is never
 * provisioned a new one behind the operator's back: its events go to another active subscription the customer has
 * in Lago, or wait as unmapped with the reason. Every other customer is resolved as before. No transaction is
 * held across the Lago call.
 */
export function honouringEndedSubscriptions (db: Kysely<Database>, organization: string, lago: LagoActiveSubscriptionsApi, resolve: Resolve): Resolve {
  return async (customerIds) => {
    if (customerIds.length === 0) return new Map()
    const ended = await endedCustomers(db, customerIds, organization)
    const endedIds = new Set(ended.map((c) => c.external_id))
    const result = await resolve(customerIds.filter((id) => !endedIds.has(id)))
    for (const c of ended) {
      const { subscriptions } = await lago.listSubscriptions({ external_customer_id: c.external_id, 'status[]': ['active'] })
      const active = subscriptions.find((s) => s.status === undefined || s.status === 'active')
      if (active === undefined) {
        result.set(c.external_id, { unmapped: c.subscription_ended_reason ?? 'the customer\'s Lago subscription ended' })
        continue
      }
      await adoptSubscription(db, c.external_id, active, organization)
      result.set(c.external_id, { subscription: active.external_id })
    }
    return result
  }
}
