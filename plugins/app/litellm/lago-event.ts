import { createHash } from 'node:crypto'
import type { LiteLLMCall } from './calls.js'
import { decimal, exactCost, isObject, text, tokenCount, unstorableText } from './fields.js'
import { normalizeDecimal } from '../usage-events/normalize.js'
import { nestedDeeperThan } from '../../../schemas/text.js'

/** Lago's per-field error codes, as its validation errors carry them (`{"transaction_id": ["value_is_mandatory"]}`). */
export type LagoFieldErrors = Record<string, string[]>

/** What Lago echoes back for an event (its EventObject, built from the input). */
export interface LagoEventEcho {
  transactionId: string
  code: string
  externalSubscriptionId: string | null
  timestamp: Date
  preciseTotalAmountCents: string | null
  properties: Record<string, unknown>
}

export type LagoEventRead = { errors: LagoFieldErrors } | { call: LiteLLMCall, echo: LagoEventEcho }

const UNIX_SECONDS = /^\d+(\.\d+)?$/
/** Year 5138: a larger number of seconds is out of any billing period (and likely milliseconds). */
const MAX_UNIX_SECONDS = 1e11

/**
 * Reads one Lago event as LiteLLM's `lago` callback sends it (and as any Lago client would), validating what Lago
 * validates: transaction_id and code present, timestamp Unix seconds. Both spellings LiteLLM has used are read:
 * external_subscription_id (current code) or external_customer_id (before Sept 2024, and in LiteLLM's docs), and
 * prompt_tokens/completion_tokens (code) or input_tokens/output_tokens (docs). response_cost may be null and the
 * token counts absent (image, audio and Responses API calls); there is no timestamp (the time of receipt is used).
 *
 * `dedupeWindowMs` > 0 turns on a content guard: the callback's transaction_id is a fresh uuid on every callback
 * run, so a double-fired callback is only recognisable by identical content close in time.
 */
export function readLagoEvent (input: unknown, receivedAt: Date, dedupeWindowMs = 0): LagoEventRead {
  if (!isObject(input)) return { errors: { event: ['value_is_invalid'] } }
  const errors: LagoFieldErrors = {}
  const transactionId = text(input.transaction_id, 255)
  if (transactionId === undefined) errors.transaction_id = ['value_is_mandatory']
  const code = text(input.code, 255)
  if (code === undefined) errors.code = ['value_is_mandatory']
  // The idempotency key and the metric code are stored and sent as given: refused rather than altered.
  for (const key of ['transaction_id', 'code'] as const) if (unstorableText(input[key]) !== undefined) errors[key] = ['value_is_invalid']
  const ts = input.timestamp
  const read = typeof ts === 'number' ? ts : typeof ts === 'string' && UNIX_SECONDS.test(ts.trim()) ? Number(ts) : undefined
  const seconds = read !== undefined && Number.isFinite(read) && read >= 0 && read <= MAX_UNIX_SECONDS ? read : undefined
  if (ts !== undefined && ts !== null && seconds === undefined) errors.timestamp = ['invalid_format']
  // Echoed back as given: a hostile depth would overflow the serializer's stack.
  if (nestedDeeperThan(input.properties)) errors.properties = ['value_is_invalid']
  if (Object.keys(errors).length > 0 || transactionId === undefined || code === undefined) return { errors }

  const properties = isObject(input.properties) ? input.properties : {}
  const notes: string[] = []
  const subscription = text(input.external_subscription_id)
  const legacyCustomer = text(input.external_customer_id)
  if (subscription === undefined && legacyCustomer !== undefined) notes.push('external_customer_id (LiteLLM before Sept 2024) read as the customer')
  const subject = subscription ?? legacyCustomer

  const precise = decimal(input.precise_total_amount_cents)
  let cost: string
  if (properties.response_cost === undefined && precise !== undefined && !precise.startsWith('-')) {
    cost = centsToUnits(precise)
  } else {
    const read = exactCost(properties.response_cost, 'response_cost')
    cost = read.cost
    if (read.note !== undefined) notes.push(read.note)
  }
  const inputTokens = tokenCount(properties.prompt_tokens) ?? tokenCount(properties.input_tokens)
  const outputTokens = tokenCount(properties.completion_tokens) ?? tokenCount(properties.output_tokens)
  if (inputTokens === undefined && outputTokens === undefined && properties.total_tokens === undefined) notes.push('no token counts (not a chat, completion or embedding call)')
  const tokensInput = inputTokens ?? 0
  const tokensOutput = outputTokens ?? 0
  const totalTokens = tokenCount(properties.total_tokens) ?? tokensInput + tokensOutput
  const timestamp = seconds !== undefined ? new Date(Math.round(seconds * 1000)) : receivedAt
  const model = text(properties.model) ?? 'unknown'

  const guard = dedupeWindowMs > 0
    ? {
        litellmId: `lago-content:${createHash('sha256').update(JSON.stringify([subject ?? null, model, tokensInput, tokensOutput, totalTokens, cost])).digest('hex')}`,
        matchWindowMs: dedupeWindowMs
      }
    : {}
  return {
    call: {
      requestId: transactionId,
      ...guard,
      model,
      provider: text(properties.provider, 100) ?? text(properties.custom_llm_provider, 100) ?? 'unknown',
      tokensInput,
      tokensOutput,
      totalTokens,
      costUsd: cost,
      apiKeyHash: null,
      timestamp,
      identity: { subject },
      attributes: { lago_code: code, ...(subscription === undefined && legacyCustomer !== undefined ? { customer_field: 'external_customer_id' } : {}) },
      notes
    },
    echo: {
      transactionId,
      code,
      externalSubscriptionId: subscription ?? null,
      timestamp,
      preciseTotalAmountCents: precise ?? null,
      properties
    }
  }
}

/** Cents to units of the currency, exactly: "18.3" → "0.183". */
export function centsToUnits (cents: string): string {
  const [int, frac = ''] = cents.split('.')
  const digits = int.padStart(3, '0') + frac
  const point = digits.length - frac.length - 2
  return normalizeDecimal(`${digits.slice(0, point)}.${digits.slice(point)}`)
}
