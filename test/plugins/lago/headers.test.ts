import t from 'tap'
import { parseRateLimit, parseRetryAfter } from '../../../plugins/app/lago/headers.js'
import { classifyLagoError, LagoApiError, LagoNotConfiguredError, LagoUnavailableError } from '../../../plugins/app/lago/errors.js'

t.test('Retry-After in seconds or as an HTTP date, capped', async (t) => {
  const now = Date.parse('2026-11-24T10:00:00Z')
  t.equal(parseRetryAfter('2', now), 2000)
  t.equal(parseRetryAfter('0', now), 0)
  t.equal(parseRetryAfter('1.5', now), 1500)
  t.equal(parseRetryAfter(['3', '9'], now), 3000, 'the first of repeated headers')
  t.equal(parseRetryAfter('Tue, 24 Nov 2026 10:00:05 GMT', now), 5000, 'IMF-fixdate')
  t.equal(parseRetryAfter('Tuesday, 24-Nov-26 10:00:07 GMT', now), 7000, 'RFC 850 date')
  t.equal(parseRetryAfter('Tue, 24 Nov 2026 09:59:00 GMT', now), 0, 'a date in the past means now')
  t.equal(parseRetryAfter('3600', now), 60_000, 'capped at 60 s by default')
  t.equal(parseRetryAfter('3600', now, 5000), 5000, 'cap is configurable')
  t.equal(parseRetryAfter('Tue, 24 Nov 2026 12:00:00 GMT', now, 10_000), 10_000)
  for (const bad of [undefined, '', '-5', 'soon', '12abc', '0x10']) t.equal(parseRetryAfter(bad, now), null, `${String(bad)} is ignored`)
})

t.test('x-ratelimit-* headers, strictly', async (t) => {
  t.same(parseRateLimit({ 'x-ratelimit-limit': '500', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1' }), { limit: 500, remaining: 0, reset: 1 })
  t.same(parseRateLimit({ 'x-ratelimit-limit': '50' }), { limit: 50, remaining: null, reset: null })
  t.equal(parseRateLimit({}), null, 'self-hosted Lago sends none')
  t.same(parseRateLimit({ 'x-ratelimit-limit': '10abc', 'x-ratelimit-reset': '2' }), { limit: null, remaining: null, reset: 2 }, 'a garbled value is not a number')
})

t.test('errors are classified as retryable, credentials or permanent', async (t) => {
  const api = (status: number) => new LagoApiError({ method: 'POST', path: '/x', status, error: 'e', code: null, errorDetails: null, retryAfterMs: null, rateLimit: null, body: null })
  for (const status of [500, 502, 503, 504, 408, 425, 429]) t.equal(classifyLagoError(api(status)), 'retryable', `${status}`)
  for (const status of [401, 403]) t.equal(classifyLagoError(api(status)), 'credentials', `${status}`)
  for (const status of [400, 404, 405, 409, 422]) t.equal(classifyLagoError(api(status)), 'permanent', `${status}`)
  for (const kind of ['timeout', 'connection_refused', 'network', 'dns', 'invalid_response'] as const) {
    t.equal(classifyLagoError(new LagoUnavailableError(kind, 'GET', '/x', 'm')), 'retryable', kind)
  }
  t.equal(classifyLagoError(new LagoNotConfiguredError('GET', '/x')), 'credentials')
  t.equal(classifyLagoError(new TypeError('bug')), 'permanent', 'a bug is not retried forever')
})

t.test('per-event errors of a refused batch are read by index', async (t) => {
  const err = (errorDetails: Record<string, unknown>) => new LagoApiError({ method: 'POST', path: '/api/v1/events/batch', status: 422, error: 'Unprocessable Entity', code: 'validation_errors', errorDetails, retryAfterMs: null, rateLimit: null, body: null })
  const batch = err({ 2: { transaction_id: ['value_already_exist'] }, 5: { code: ['value_is_mandatory'] } })
  t.same([...(batch.eventErrors() ?? new Map())], [[2, { transaction_id: ['value_already_exist'] }], [5, { code: ['value_is_mandatory'] }]])
  t.equal(batch.fieldErrors(), null, 'not field errors')
  const whole = err({ events: ['too_many_events'] })
  t.equal(whole.eventErrors(), null, 'not index-keyed')
  t.same(whole.fieldErrors(), { events: ['too_many_events'] })
})
