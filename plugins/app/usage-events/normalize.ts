import { hash } from 'node:crypto'
import type { LiteLLMUsageEventInput } from '../../../schemas/usage-events.js'
import { findTextProblem, textFault, wellFormedText, type TextProblem } from '../../../schemas/text.js'
import { Decimal } from '../lago/decimal.js'

/** customer_external_id of a call that names no customer yet (it waits as unmapped until a mapping names one). */
export const NO_CUSTOMER = '(unmapped)'

/** Why a usage event is stored without being queued for Lago. */
export interface HoldReason { kind: 'unmapped' | 'not_billable', message: string }

/** A usage event ready to be stored: every field normalized, costs as exact decimal strings. */
export interface UsageEvent {
  /** The organization it belongs to (the ingestion credential decides); default when unset. */
  organizationId?: string
  requestId: string
  customerExternalId: string
  model: string
  provider: string
  eventType: string
  tokensInput: number
  tokensOutput: number
  totalTokens: number
  costUsd: string
  apiKeyHash: string | null
  timestamp: Date
  source: string
  fingerprint: string
  metadata: Record<string, unknown>
  /** Stored as unmapped or not_billable with this reason instead of pending. */
  hold?: HoldReason
  /**
   * LiteLLM's id of the call as its spend logs know it. A stored event with the same id (and no different
   * litellmCallId) is the same call arriving through another format: this one is then a duplicate.
   */
  litellmId?: string
  litellmCallId?: string
  /** Same litellmId only counts as the same call within this many milliseconds (cache hits: ids are reused). */
  matchWindowMs?: number
}

const PLAIN_DECIMAL = /^\d+(\.\d+)?$/

/**
 * Writes a JS number as the plain decimal it came from. JSON numbers from Python (LiteLLM) and JS producers
 * are the shortest text that round-trips the double, and String(n) yields exactly that text, so 0.00375 is
 * stored as 0.00375, never as 0.0037499999999999999. (The product's one decimal reader: Decimal.)
 */
export function numberToDecimal (n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`not a finite number: ${n}`)
  // String(n) is the shortest text that round-trips the double; in plain notation it is already canonical (no
  // leading or trailing zeros), the common case ("0.00375"), read without BigInt arithmetic.
  const text = String(n)
  return PLAIN_DECIMAL.test(text) ? text : Decimal.from(n).toString()
}

/** Canonical text of a decimal: no leading zeros, no trailing fractional zeros ("0.003750" → "0.00375"). */
export function normalizeDecimal (text: string): string {
  return Decimal.from(text).toString()
}

// Keys that carry prompt or completion text in LiteLLM payloads: never stored.
const CONTENT_KEYS = /^(messages?|prompts?|completions?|responses?|content|input|output|choices|text)$/i
export const METADATA_MAX_BYTES = 4096

/**
 * Keeps the extra billing attributes small and free of prompt/response text: content-like keys are dropped at
 * every level and the result is capped; an oversized value is replaced by a marker rather than stored.
 */
export function sanitizeMetadata (metadata: Record<string, unknown> | undefined): Record<string, unknown> {
  const result = cleanMetadata(metadata)
  return Buffer.byteLength(JSON.stringify(result)) > METADATA_MAX_BYTES ? { truncated: true } : result
}

/** sanitizeMetadata without the cap, for a caller that checks the size of what it stores itself. */
export function cleanMetadata (metadata: Record<string, unknown> | undefined): Record<string, unknown> {
  if (metadata === undefined) return {}
  const clean = (value: unknown, depth: number): unknown => {
    // Kept for the record, never a key: text that cannot be stored is made well-formed rather than refused.
    if (typeof value === 'string') return wellFormedText(value.length > 512 ? `${value.slice(0, 512)}…` : value)
    if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
    if (value === null || typeof value !== 'object') return value
    if (depth >= 3) return '[nested too deep]'
    if (Array.isArray(value)) return value.slice(0, 50).map((v) => clean(v, depth + 1))
    // A loop rather than fromEntries over filtered entries (arrays per key: a twentieth of the service's CPU under
    // generic_api batches); a "__proto__" key is defined, not assigned, so that it stays a plain key.
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(value)) {
      if (CONTENT_KEYS.test(k)) continue
      const key = wellFormedText(k)
      const v = clean((value as Record<string, unknown>)[k], depth + 1)
      if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true })
      else out[key] = v
    }
    return out
  }
  return clean(metadata, 0) as Record<string, unknown>
}

function toDate (timestamp: number | string | undefined, receivedAt: Date): Date {
  if (timestamp === undefined) return receivedAt
  return typeof timestamp === 'number' ? new Date(Math.round(timestamp * 1000)) : new Date(timestamp)
}

const EVENT_TEXT: Array<[keyof UsageEvent, string]> = [
  ['requestId', '/request_id'], ['customerExternalId', '/customer_id'], ['model', '/model'], ['provider', '/provider'],
  ['eventType', '/event_type'], ['apiKeyHash', '/api_key_hash'], ['source', '/source'], ['litellmId', '/litellm_id'],
  ['litellmCallId', '/litellm_call_id']
]
// PostgreSQL's timestamptz goes further, but Lago and ISO-8601 stop at year 9999.
const MIN_TIME = Date.parse('0001-01-01T00:00:00.000Z')
const MAX_TIME = Date.parse('9999-12-31T23:59:59.999Z')
const STORABLE_COST = /^\d{1,20}(\.\d{1,60})?$/

/**
 * Why a usage event cannot be stored, or undefined: every check PostgreSQL (or Lago after it) would fail on, done
 * before the event joins a multi-row write, so that it fails alone. Fields are named in usage-event terms.
 */
export function usageEventProblem (e: UsageEvent): TextProblem | undefined {
  for (const [key, field] of EVENT_TEXT) {
    const value = e[key]
    if (value === undefined || value === null) continue
    if (typeof value !== 'string') return { field, message: 'is not text' }
    const fault = textFault(value)
    if (fault !== undefined) return { field, message: fault }
  }
  const time = e.timestamp instanceof Date ? e.timestamp.getTime() : Number.NaN
  if (!(time >= MIN_TIME && time <= MAX_TIME)) return { field: '/timestamp', message: 'is not a time between the years 1 and 9999' }
  for (const [count, field] of [[e.tokensInput, '/tokens_input'], [e.tokensOutput, '/tokens_output'], [e.totalTokens, '/total_tokens']] as const) {
    if (!Number.isSafeInteger(count) || count < 0) return { field, message: 'is not a whole number of tokens between 0 and 2^53-1' }
  }
  if (!STORABLE_COST.test(e.costUsd)) return { field: '/cost_usd', message: 'is not a non-negative decimal with at most 20 integer digits' }
  return findTextProblem(e.metadata, '/metadata') ?? (e.hold !== undefined ? findTextProblem(e.hold.message, '/hold') : undefined)
}

/**
 * The billing content of an event: a resend with the same request_id must match it exactly. The time of
 * receipt is not part of it when the producer sent no timestamp, so such resends still match.
 */
export function fingerprintOf (e: Omit<UsageEvent, 'fingerprint' | 'metadata' | 'requestId' | 'source' | 'apiKeyHash' | 'eventType'>, hasTimestamp: boolean): string {
  const content = [e.customerExternalId, e.model, e.provider, e.tokensInput, e.tokensOutput, e.totalTokens, e.costUsd,
    hasTimestamp ? e.timestamp.toISOString() : null]
  // One-shot hash: no Hash object per event (this runs for every ingested event).
  return hash('sha256', JSON.stringify(content), 'hex')
}

/** Maps a validated seed-format event to a usage event. */
export function fromLiteLLMEvent (input: LiteLLMUsageEventInput, source: string, receivedAt: Date): UsageEvent {
  const tokensInput = input.tokens_input ?? 0
  const tokensOutput = input.tokens_output ?? 0
  const base = {
    customerExternalId: input.customer_id,
    model: input.model,
    provider: input.provider ?? 'unknown',
    tokensInput,
    tokensOutput,
    totalTokens: input.total_tokens ?? tokensInput + tokensOutput,
    costUsd: typeof input.cost_usd === 'number' ? numberToDecimal(input.cost_usd) : normalizeDecimal(input.cost_usd),
    timestamp: toDate(input.timestamp, receivedAt)
  }
  // Written out rather than spread: `{ ...base, more }` cost about 3 µs per event (V8's slow path for a spread
  // followed by more properties), a quarter of this function on the ingestion path.
  return {
    customerExternalId: base.customerExternalId,
    model: base.model,
    provider: base.provider,
    tokensInput: base.tokensInput,
    tokensOutput: base.tokensOutput,
    totalTokens: base.totalTokens,
    costUsd: base.costUsd,
    timestamp: base.timestamp,
    requestId: input.request_id,
    eventType: input.event_type ?? 'usage',
    apiKeyHash: input.api_key_hash ?? null,
    source,
    fingerprint: fingerprintOf(base, input.timestamp !== undefined),
    metadata: sanitizeMetadata(input.metadata)
  }
}
