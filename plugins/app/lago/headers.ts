import type { RateLimitHeaders } from 'lago-javascript-client'

export type { RateLimitHeaders }

type HeaderValue = string | string[] | undefined

const first = (value: HeaderValue): string | undefined => (Array.isArray(value) ? value[0] : value)?.trim()

/** The default cap on how long a Retry-After may make a caller wait. */
export const DEFAULT_MAX_RETRY_AFTER_MS = 60_000

/**
 * Reads a Retry-After header (RFC 9110: delay in seconds, or an HTTP date) as milliseconds to wait, capped at
 * `capMs`. A date in the past means "now" (0). Null when the header is absent or unreadable, so that the
 * caller falls back to its own backoff rather than to an invented delay.
 */
export function parseRetryAfter (value: HeaderValue, nowMs = Date.now(), capMs = DEFAULT_MAX_RETRY_AFTER_MS): number | null {
  const text = first(value)
  if (text === undefined || text === '') return null
  let ms: number
  if (/^\d+(\.\d+)?$/.test(text)) {
    ms = Math.round(Number(text) * 1000)
  } else {
    // Only the date forms HTTP allows, all of which name a weekday or a month: rejects bare numbers like "-5".
    if (!/[A-Za-z]{3}/.test(text)) return null
    const at = Date.parse(text)
    if (Number.isNaN(at)) return null
    ms = Math.max(0, at - nowMs)
  }
  return Math.min(ms, capMs)
}

const integerHeader = (value: HeaderValue): number | null => {
  const text = first(value)
  return text !== undefined && /^\d+$/.test(text) ? Number(text) : null
}

/**
 * Reads Lago Cloud's x-ratelimit-limit / -remaining / -reset (seconds until the window resets) into the
 * lago-javascript-client's RateLimitHeaders shape. Null when none is present (self-hosted Lago has no rate
 * limiter). The package's own parseRateLimitHeaders wants a fetch Headers object and accepts "10abc" as 10;
 * undici hands us a plain record, and a strict reading keeps a garbled header from becoming a number.
 */
export function parseRateLimit (headers: Record<string, HeaderValue>): RateLimitHeaders | null {
  const limit = integerHeader(headers['x-ratelimit-limit'])
  const remaining = integerHeader(headers['x-ratelimit-remaining'])
  const reset = integerHeader(headers['x-ratelimit-reset'])
  if (limit === null && remaining === null && reset === null) return null
  return { limit, remaining, reset }
}
