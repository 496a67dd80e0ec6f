import { LagoApiError, LagoNotConfiguredError, LagoUnavailableError, type LagoError } from './errors.js'

/** How this service answers its own client when a Lago call fails. */
export interface LagoErrorAnswer {
  statusCode: number
  code: string
  message: string
  details?: Array<{ field: string, message: string, code: string }>
  /** For a Retry-After header, when Lago said when to come back. */
  retryAfterSeconds?: number
}

// Lago's field error codes in words; unknown codes are shown with spaces for underscores.
const FIELD_MESSAGES: Record<string, string> = {
  value_is_mandatory: 'is required',
  value_already_exist: 'already exists',
  value_is_invalid: 'is invalid',
  invalid_format: 'has an invalid format',
  invalid_amount: 'is not a valid amount',
  invalid_email_format: 'is not a valid email address',
  currencies_does_not_match: 'does not match the currency already set for this customer',
  invalid_graduated_ranges: 'are not contiguous ranges starting at 0 and ending open',
  invalid_volume_ranges: 'are not contiguous ranges starting at 0 and ending open'
}

const words = (code: string): string => FIELD_MESSAGES[code] ?? code.replace(/_/g, ' ')

/** Lago's error_details as a flat list: {"code": ["value_already_exist"]} → code: already exists. */
export function lagoFieldErrors (details: Record<string, unknown> | null): NonNullable<LagoErrorAnswer['details']> {
  const out: NonNullable<LagoErrorAnswer['details']> = []
  const visit = (value: unknown, path: string): void => {
    if (Array.isArray(value)) {
      for (const code of value) if (typeof code === 'string') out.push({ field: path, message: words(code), code })
    } else if (typeof value === 'string') {
      out.push({ field: path, message: words(value), code: value })
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, inner] of Object.entries(value)) visit(inner, path === '' ? key : `${path}.${key}`)
    }
  }
  visit(details ?? {}, '')
  return out
}

/**
 * Lago's failures with their meaning: its 404 is a 404 with its code, its 422 a 422 with its field errors, a
 * state conflict (its 405) a 409; Lago unreachable, slow or throttling is a 503, Lago failing (5xx, or refusing
 * this service's own key) a 502 whose details stay in the logs.
 */
export function lagoErrorAnswer (err: LagoError): LagoErrorAnswer {
  if (err instanceof LagoNotConfiguredError) {
    return { statusCode: 503, code: 'lago_not_configured', message: 'This service has no Lago API key (LAGO_API_KEY is unset), so it cannot reach Lago' }
  }
  if (err instanceof LagoUnavailableError) {
    return {
      statusCode: 503,
      code: 'lago_unavailable',
      message: err.kind === 'timeout'
        ? 'Lago did not answer in time; retry later'
        : 'Lago cannot be reached; retry later'
    }
  }
  const status = err.status
  if (status === 404) {
    const code = err.code ?? 'not_found'
    const resource = code.endsWith('_not_found') ? code.slice(0, -'_not_found'.length).replace(/_/g, ' ') : 'resource'
    return { statusCode: 404, code, message: `Lago has no such ${resource}` }
  }
  if (status === 422) {
    const details = lagoFieldErrors(err.errorDetails)
    const first = details[0]
    return {
      statusCode: 422,
      code: 'lago_validation_error',
      message: first !== undefined ? `Lago refused the request: ${first.field} ${first.message}` : `Lago refused the request (${err.code ?? 'unprocessable'})`,
      ...(details.length > 0 ? { details } : {})
    }
  }
  if (status === 405) {
    const code = err.code ?? 'conflict'
    return { statusCode: 409, code, message: `Lago refused the request in the current state: ${code.replace(/_/g, ' ')}` }
  }
  if (status === 429) {
    return {
      statusCode: 503,
      code: 'lago_unavailable',
      message: 'Lago is rate limiting this service; retry later',
      ...(err.retryAfterMs !== null ? { retryAfterSeconds: Math.max(1, Math.ceil(err.retryAfterMs / 1000)) } : {})
    }
  }
  if (status === 401 || status === 403) {
    return { statusCode: 502, code: 'lago_error', message: 'Lago refused this service\'s credentials; an operator must check LAGO_API_KEY' }
  }
  return { statusCode: 502, code: 'lago_error', message: 'Lago failed to process the request; the details are in this service\'s logs' }
}

/**
 * When Lago answered 404 (with this code, if given), `replacement`: an error naming what was not found. Anything
 * else unchanged.
 */
export function whenNotFound (err: unknown, replacement: () => Error, lagoCode?: string): unknown {
  return err instanceof LagoApiError && err.status === 404 && (lagoCode === undefined || err.code === lagoCode) ? replacement() : err
}

/** The call's result; its Lago 404 (with this code, if given) becomes `replacement()`. */
export async function orNotFound<T> (call: Promise<T>, replacement: () => Error, lagoCode?: string): Promise<T> {
  try {
    return await call
  } catch (err) {
    throw whenNotFound(err, replacement, lagoCode)
  }
}
