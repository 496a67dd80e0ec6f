import { createHash } from 'node:crypto'
import type { LiteLLMUsageEventInput } from '../../../schemas/usage-events.js'

/** customer_external_id of a call that names no customer yet (it waits as unmapped until a mapping names one). */
export const NO_CUSTOMER = '(unmapped)'

/** Why a usage event is stored without being queued for Lago. */
export interface HoldReason { kind: 'unmapped' | 'not_billable', message: string }

/** A usage event ready to be stored: every field normalized, costs as exact decimal strings. */
export interface UsageEvent {
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

/**
 * Writes a JS number as the plain decimal it came from. JSON numbers from Python (LiteLLM) and JS producers
 * are the shortest text that round-trips the double, and String(n) yields exactly that text, so 0.00375 is
 * stored as 0.00375, never as 0.0037499999999999999.
 */
export function numberToDecimal (n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`not a finite number: ${n}`)
  const text = String(n)
  const match = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(text)
  if (match === null) return normalizeDecimal(text)
  const [, sign, int, frac = '', exp] = match
  const digits = int + frac
  const point = int.length + Number(exp)
  const plain = point <= 0
    ? `0.${'0'.repeat(-point)}${digits}`
    : point >= digits.length ? digits + '0'.repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`
  return normalizeDecimal(sign + plain)
}

/** Canonical text of a decimal: no leading zeros, no trailing fractional zeros ("0.003750" → "0.00375"). */
export function normalizeDecimal (text: string): string {
  const negative = text.startsWith('-')
  const [intPart, fracPart = ''] = (negative ? text.slice(1) : text).split('.')
  const int = intPart.replace(/^0+(?=\d)/, '') || '0'
  const frac = fracPart.replace(/0+$/, '')
  const body = frac.length > 0 ? `${int}.${frac}` : int
  return negative && body !== '0' ? `-${body}` : body
}

// Keys that carry prompt or completion text in LiteLLM payloads: never stored.
const CONTENT_KEYS = /^(messages?|prompts?|completions?|responses?|content|input|output|choices|text)$/i
export const METADATA_MAX_BYTES = 4096

/**
 * Keeps the extra billing attributes small and free of prompt/response text: content-like keys are dropped at
 * every level and the result is capped; an oversized value is replaced by a marker rather than stored.
 */
export function sanitizeMetadata (metadata: Record<string, unknown> | undefined): Record<string, unknown> {
  if (metadata === undefined) return {}
  const clean = (value: unknown, depth: number): unknown => {
    if (value === null || typeof value !== 'object') return typeof value === 'string' && value.length > 512 ? `${value.slice(0, 512)}…` : value
    if (depth >= 3) return '[nested too deep]'
    if (Array.isArray(value)) return value.slice(0, 50).map((v) => clean(v, depth + 1))
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) if (!CONTENT_KEYS.test(k)) out[k] = clean(v, depth + 1)
    return out
  }
  const result = clean(metadata, 0) as Record<string, unknown>
  return Buffer.byteLength(JSON.stringify(result)) > METADATA_MAX_BYTES ? { truncated: true } : result
}

function toDate (timestamp: number | string | undefined, receivedAt: Date): Date {
  if (timestamp === undefined) return receivedAt
  return typeof timestamp === 'number' ? new Date(Math.round(timestamp * 1000)) : new Date(timestamp)
}

/**
 * The billing content of an event: a resend with the same request_id must match it exactly. The time of
 * receipt is not part of it when the producer sent no timestamp, so such resends still match.
 */
export function fingerprintOf (e: Omit<UsageEvent, 'fingerprint' | 'metadata' | 'requestId' | 'source' | 'apiKeyHash' | 'eventType'>, hasTimestamp: boolean): string {
  const content = [e.customerExternalId, e.model, e.provider, e.tokensInput, e.tokensOutput, e.totalTokens, e.costUsd,
    hasTimestamp ? e.timestamp.toISOString() : null]
  return createHash('sha256').update(JSON.stringify(content)).digest('hex')
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
  return {
    ...base,
    requestId: input.request_id,
    eventType: input.event_type ?? 'usage',
    apiKeyHash: input.api_key_hash ?? null,
    source,
    fingerprint: fingerprintOf(base, input.timestamp !== undefined),
    metadata: sanitizeMetadata(input.metadata)
  }
}
