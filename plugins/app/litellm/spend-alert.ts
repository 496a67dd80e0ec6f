import { exactCost, isObject, text } from './fields.js'

/** A spend_tracked alert of LiteLLM's alerting webhook: one customer call's cost. */
export interface SpendAlert {
  customerId: string | null
  spendUsd: string
  apiKeyHash: string | null
  keyAlias: string | null
  userId: string | null
  teamId: string | null
  eventGroup: string | null
}

/**
 * Reads a LiteLLM WebhookEvent. Only spend_tracked carries usage (its `spend` is that request's cost, not a
 * running total); the budget and management events (budget_crossed, key_created...) are acknowledged and not kept.
 * `event_group` was "customer" in old builds and is "end_user" in new ones.
 */
export function readSpendAlert (body: unknown): { alert: SpendAlert } | { ignored: string } {
  if (!isObject(body)) return { ignored: 'not a LiteLLM webhook event' }
  const event = text(body.event, 64)
  if (event !== 'spend_tracked') return { ignored: event === undefined ? 'no event type' : `${event} is not a spend event` }
  return {
    alert: {
      customerId: text(body.customer_id) ?? null,
      spendUsd: exactCost(body.spend, 'spend').cost,
      apiKeyHash: text(body.token) ?? null,
      keyAlias: text(body.key_alias) ?? null,
      userId: text(body.user_id) ?? null,
      teamId: text(body.team_id) ?? null,
      eventGroup: text(body.event_group, 64) ?? null
    }
  }
}
