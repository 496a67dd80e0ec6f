import type { RateLimitHeaders } from './headers.js'

/** Field errors as Lago writes them: field name → snake_case error codes ("value_already_exist"). */
export type LagoFieldErrors = Record<string, string[]>

interface LagoApiErrorInit {
  method: string
  path: string
  status: number
  error: string
  code: string | null
  errorDetails: Record<string, unknown> | null
  retryAfterMs: number | null
  rateLimit: RateLimitHeaders | null
  body: unknown
}

const isFieldErrors = (value: unknown): value is LagoFieldErrors =>
  typeof value === 'object' && value !== null && !Array.isArray(value) &&
  Object.values(value).every((codes) => Array.isArray(codes) && codes.every((c) => typeof c === 'string'))

/**
 * Lago answered with an error status. `error`, `code` and `errorDetails` come from Lago's body
 * ({status, error, code, error_details}); a body that is not Lago's (a proxy's HTML page) leaves `code` null
 * and `error` the status text.
 */
export class LagoApiError extends Error {
  readonly method: string
  readonly path: string
  readonly status: number
  readonly error: string
  /** Lago's machine code: validation_errors, customer_not_found, no_active_subscription… */
  readonly code: string | null
  readonly errorDetails: Record<string, unknown> | null
  /** From Retry-After (or, on a 429 without it, x-ratelimit-reset), capped; null when Lago said nothing. */
  readonly retryAfterMs: number | null
  readonly rateLimit: RateLimitHeaders | null
  /** The parsed body, or its first 2 KiB of text when it was not JSON. */
  readonly body: unknown

  constructor (init: LagoApiErrorInit) {
    super(`Lago ${init.method} ${init.path} answered ${init.status} ${init.error}${init.code !== null ? ` (${init.code})` : ''}`)
    this.name = 'LagoApiError'
    this.method = init.method
    this.path = init.path
    this.status = init.status
    this.error = init.error
    this.code = init.code
    this.errorDetails = init.errorDetails
    this.retryAfterMs = init.retryAfterMs
    this.rateLimit = init.rateLimit
    this.body = init.body
  }

  get isNotFound (): boolean { return this.status === 404 }

  /** The field errors of a single-object 422: {"transaction_id": ["value_already_exist"]}; null otherwise. */
  fieldErrors (): LagoFieldErrors | null {
    return this.errorDetails !== null && isFieldErrors(this.errorDetails) ? this.errorDetails : null
  }

  /**
   * The per-event errors of a rejected POST /events/batch, keyed by the event's index in the batch
   * ({"2": {"transaction_id": ["value_already_exist"]}}). Null when the details are not index-keyed, e.g.
   * {"events": ["too_many_events"]}. Lago stored none of the batch in either case.
   */
  eventErrors (): Map<number, LagoFieldErrors> | null {
    const details = this.errorDetails
    if (details === null) return null
    const entries = Object.entries(details)
    if (entries.length === 0 || !entries.every(([k, v]) => /^\d+$/.test(k) && isFieldErrors(v))) return null
    return new Map(entries.map(([k, v]) => [Number(k), v as LagoFieldErrors]))
  }
}

export type LagoUnavailableKind = 'timeout' | 'connection_refused' | 'network' | 'dns' | 'invalid_response'

/**
 * No usable answer from Lago: it timed out, refused or dropped the connection, or sent something that is not
 * HTTP+JSON. After a timeout or a dropped connection Lago may still have processed the request.
 */
export class LagoUnavailableError extends Error {
  constructor (
    readonly kind: LagoUnavailableKind,
    readonly method: string,
    readonly path: string,
    message: string,
    options?: { cause?: unknown }
  ) {
    super(`Lago ${method} ${path}: ${message}`, options)
    this.name = 'LagoUnavailableError'
  }
}

/** The client has no API key (LAGO_API_KEY is unset): nothing was sent. */
export class LagoNotConfiguredError extends Error {
  constructor (readonly method: string, readonly path: string) {
    super(`Lago ${method} ${path} not sent: LAGO_API_KEY is not set (set it to your Lago organization API key)`)
    this.name = 'LagoNotConfiguredError'
  }
}

export type LagoError = LagoApiError | LagoUnavailableError | LagoNotConfiguredError

export const isLagoError = (err: unknown): err is LagoError =>
  err instanceof LagoApiError || err instanceof LagoUnavailableError || err instanceof LagoNotConfiguredError

export type LagoErrorClass = 'retryable' | 'credentials' | 'permanent'

/**
 * What a caller should do about an error: retry later (5xx, 408, 425, 429, timeouts, network errors), stop
 * until an operator fixes the key (401, 403, no key), or give up on this request (any other 4xx, and errors
 * that are not Lago's, which are bugs that a retry would only repeat).
 */
export function classifyLagoError (err: unknown): LagoErrorClass {
  if (err instanceof LagoUnavailableError) return 'retryable'
  if (err instanceof LagoNotConfiguredError) return 'credentials'
  if (err instanceof LagoApiError) {
    if (err.status === 401 || err.status === 403) return 'credentials'
    if (err.status >= 500 || err.status === 408 || err.status === 425 || err.status === 429) return 'retryable'
    return 'permanent'
  }
  return 'permanent'
}
