import { normalizeDecimal, numberToDecimal } from '../usage-events/normalize.js'
import { textFault, wellFormedText } from '../../../schemas/text.js'

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * The object without its undefined properties. For objects written out in this code (their keys are ours, never a
 * payload's: a "__proto__" key would set the prototype). A loop: Object.fromEntries over entries cost 3.5 % of the
 * service's CPU under generic_api batches.
 */
export function compact<T extends Record<string, unknown>> (o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(o)) if (o[key] !== undefined) out[key] = o[key]
  return out as { [K in keyof T]?: Exclude<T[K], undefined> }
}

/**
 * A non-empty identifier: strings are trimmed and capped, numbers written out; Python's "None" counts as absent.
 * A NUL or lone surrogate becomes U+FFFD: values an end user controls (LiteLLM's end_user is the OpenAI `user`
 * field) must not make a call unstorable, or unbillable. Keys that identify a call are checked with
 * `unstorableText` first and refuse the payload instead.
 */
export function text (value: unknown, max = 255): string | undefined {
  const s = typeof value === 'string' ? wellFormedText(value.trim()) : typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined
  if (s === undefined || s === '' || s === 'None' || s === 'null') return undefined
  return s.length > max ? s.slice(0, max) : s
}

/** Why a string that must be stored as given (an idempotency key, a code) cannot be, or undefined. */
export function unstorableText (value: unknown): string | undefined {
  return typeof value === 'string' ? textFault(value) : undefined
}

const PLAIN_DECIMAL = /^-?\d+(\.\d+)?$/
const EXPONENT_DECIMAL = /^-?\d+(\.\d+)?[eE][+-]?\d+$/

/** An exact decimal string from a JSON number or a numeric string; undefined for anything else (NaN included). */
export function decimal (value: unknown): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? numberToDecimal(value) : undefined
  if (typeof value !== 'string') return undefined
  const s = value.trim()
  if (PLAIN_DECIMAL.test(s)) return normalizeDecimal(s)
  // Python's str(1e-05) is "1e-05": the shortest text of the double, so the double's decimal is the same number.
  if (EXPONENT_DECIMAL.test(s)) return numberToDecimal(Number(s))
  return undefined
}

/**
 * The cost of a call, exact. LiteLLM sends null (the model is not priced), NaN (pricing failed) or nothing;
 * all of those are stored as 0 with a note saying why, so the call is still recorded and its tokens billable.
 * Negative costs (never sent by LiteLLM) are refused the same way.
 */
export function exactCost (value: unknown, field: string): { cost: string, note?: string } {
  const d = decimal(value)
  if (d !== undefined && !d.startsWith('-')) return { cost: d }
  if (value === undefined) return { cost: '0', note: `${field} missing: stored as 0` }
  if (value === null || value === 'None') return { cost: '0', note: `${field} was null (LiteLLM could not price the call): stored as 0` }
  // Never JSON.stringify the value: a hostile nesting depth would overflow the stack.
  const shown = typeof value === 'string'
    ? wellFormedText(value.slice(0, 32))
    : Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'an object' : String(value).slice(0, 32)
  return { cost: '0', note: `${field} was ${shown}, not a cost: stored as 0` }
}

/** A token count, or undefined when absent or not a non-negative integer (numeric strings from LiteLLM's v1 format count). */
export function tokenCount (value: unknown): number | undefined {
  const n = typeof value === 'string' && /^\d{1,15}$/.test(value.trim()) ? Number(value) : value
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined
}

/** Epoch seconds (LiteLLM's float startTime) to a Date, to the millisecond. */
export function epochSeconds (value: unknown): Date | undefined {
  const n = typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0 || n > 1e11) return undefined
  return new Date(Math.round(n * 1000))
}

/**
 * An ISO-8601 time to a Date, to the millisecond. Python writes microseconds ("…00.123456+00:00") and, for naive
 * datetimes (LiteLLM's v1 payloads: "2025-11-24 10:00:00.123456"), no zone at all: read as UTC.
 */
export function isoTime (value: unknown): Date | undefined {
  if (typeof value !== 'string') return undefined
  const m = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/.exec(value.trim())
  if (m === null) return undefined
  const [, date, time, fraction = '', zone = 'Z'] = m
  const base = Date.parse(`${date}T${time}${zone}`)
  if (Number.isNaN(base)) return undefined
  return new Date(base + Math.round(Number(`0.${fraction || '0'}`) * 1000))
}

// LiteLLM's spend logs and StandardLoggingPayload both rename a cache hit "<id>_cache_hit<time.time()>", each with
// its own clock reading, so the suffixes differ between the two for the same call.
const CACHE_HIT_ID = /^(.+?)_cache_hit\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/

/** A cache hit's start time differs between LiteLLM's records of it only by rounding to the millisecond. */
export const CACHE_HIT_MATCH_WINDOW_MS = 2

/**
 * LiteLLM's id of a call as its spend logs know it (the response id, else the call id), comparable across
 * formats: a cache hit's clock suffix is dropped and its start time, within CACHE_HIT_MATCH_WINDOW_MS, tells
 * it apart from other hits of the same cached response.
 */
export function litellmCallKey (id: string, cacheHit: boolean): { litellmId: string, matchWindowMs?: number } {
  const m = CACHE_HIT_ID.exec(id)
  if (m !== null) return { litellmId: `${m[1]}_cache_hit`, matchWindowMs: CACHE_HIT_MATCH_WINDOW_MS }
  if (cacheHit) return { litellmId: `${id}_cache_hit`, matchWindowMs: CACHE_HIT_MATCH_WINDOW_MS }
  return { litellmId: id }
}

/** Strings of a list (tags), capped in count and length; a JSON-encoded list is read too (spend logs). */
export function textList (value: unknown, maxItems = 20): string[] | undefined {
  let list = value
  if (typeof value === 'string') {
    try { list = JSON.parse(value) } catch { return undefined }
  }
  if (!Array.isArray(list)) return undefined
  const items = list.flatMap((v) => { const s = text(v, 200); return s !== undefined ? [s] : [] })
  return items.length > 0 ? items.slice(0, maxItems) : undefined
}
