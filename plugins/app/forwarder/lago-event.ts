import type { EventInputObject } from '../lago/types.js'
import { Decimal } from '../lago/decimal.js'

/** What of a stored usage event goes to Lago (columns of litellm_usage_events). */
export interface UsageEventForLago {
  request_id: string
  timestamp: Date
  /** numeric, as PostgreSQL prints it */
  cost_usd: string
  tokens_input: number
  tokens_output: number
  total_tokens: number
  model: string
  provider: string
}

/**
 * Unix seconds as Lago's contract allows them (an integer or a string; decimals only in a string): "1795651282"
 * or "1795651282.97". Stored timestamps are JavaScript dates, so milliseconds are the finest part.
 */
export function unixSecondsText (at: Date): string {
  const ms = at.getTime()
  if (!Number.isFinite(ms)) throw new RangeError('invalid date')
  const seconds = Math.floor(ms / 1000)
  const fraction = String(ms - seconds * 1000).padStart(3, '0').replace(/0+$/, '')
  return fraction === '' ? String(seconds) : `${seconds}.${fraction}`
}

/**
 * The event Lago receives for one usage event (an item of POST /api/v1/events/batch). Built once, when the
 * event's subscription is first known, and frozen into the row (lago_payload): every resend is byte-identical,
 * which is what lets Lago recognise a duplicate.
 */
export function lagoEventBody (event: UsageEventForLago, subscription: string, metricCode: string) {
  return {
    transaction_id: event.request_id,
    external_subscription_id: subscription,
    code: metricCode,
    timestamp: unixSecondsText(event.timestamp),
    // Lago's amount for the event: the cost in cents, exact (a dollar amount with up to numeric's places).
    precise_total_amount_cents: Decimal.from(event.cost_usd).shift(2).toString(),
    properties: {
      tokens_input: event.tokens_input,
      tokens_output: event.tokens_output,
      total_tokens: event.total_tokens,
      model: event.model,
      provider: event.provider,
      cost_usd: event.cost_usd
    }
  } satisfies EventInputObject
}

/** The frozen body, as stored in lago_payload and sent as is. */
export type LagoEventBody = ReturnType<typeof lagoEventBody>
