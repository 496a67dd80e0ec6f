import t from 'tap'
import { LagoApiError, LagoNotConfiguredError, LagoUnavailableError } from '../../../plugins/app/lago/errors.js'
import { lagoErrorAnswer, lagoFieldErrors, whenNotFound } from '../../../plugins/app/lago/http-errors.js'

const apiError = (status: number, body: { code?: string, error_details?: Record<string, unknown> } = {}, retryAfterMs: number | null = null) => new LagoApiError({
  method: 'GET', path: '/api/v1/x', status, error: 'E', code: body.code ?? null, errorDetails: body.error_details ?? null, retryAfterMs, rateLimit: null, body
})

t.test('Lago\'s statuses in this API\'s terms', async (t) => {
  t.same(lagoErrorAnswer(apiError(404, { code: 'plan_not_found' })), { statusCode: 404, code: 'plan_not_found', message: 'Lago has no such plan' })
  t.same(lagoErrorAnswer(apiError(404)), { statusCode: 404, code: 'not_found', message: 'Lago has no such resource' })
  t.same(lagoErrorAnswer(apiError(422, { code: 'validation_errors', error_details: { code: ['value_already_exist'], amount: ['invalid_amount', 'custom_code'] } })), {
    statusCode: 422,
    code: 'lago_validation_error',
    message: 'Lago refused the request: code already exists',
    details: [
      { field: 'code', message: 'already exists', code: 'value_already_exist' },
      { field: 'amount', message: 'is not a valid amount', code: 'invalid_amount' },
      { field: 'amount', message: 'custom code', code: 'custom_code' }
    ]
  })
  t.same(lagoErrorAnswer(apiError(422, { code: 'graduated_percentage_requires_premium_license' })),
    { statusCode: 422, code: 'lago_validation_error', message: 'Lago refused the request (graduated_percentage_requires_premium_license)' })
  t.same(lagoErrorAnswer(apiError(405, { code: 'not_voidable' })), { statusCode: 409, code: 'not_voidable', message: 'Lago refused the request in the current state: not voidable' })
  t.match(lagoErrorAnswer(apiError(429, {}, 2500)), { statusCode: 503, code: 'lago_unavailable', retryAfterSeconds: 3 })
  t.notOk('retryAfterSeconds' in lagoErrorAnswer(apiError(429)), 'no invented Retry-After')
  for (const status of [401, 403]) t.match(lagoErrorAnswer(apiError(status)), { statusCode: 502, code: 'lago_error', message: /LAGO_API_KEY/ })
  for (const status of [400, 500, 502, 503, 504]) t.same(lagoErrorAnswer(apiError(status)).statusCode, 502, `${status} from Lago`)
  t.match(lagoErrorAnswer(new LagoUnavailableError('timeout', 'GET', '/x', 'slow')), { statusCode: 503, code: 'lago_unavailable', message: /did not answer in time/ })
  t.match(lagoErrorAnswer(new LagoUnavailableError('connection_refused', 'GET', '/x', 'refused')), { statusCode: 503, message: /cannot be reached/ })
  t.match(lagoErrorAnswer(new LagoNotConfiguredError('GET', '/x')), { statusCode: 503, code: 'lago_not_configured' })
})

t.test('field errors flatten nested and index-keyed details', async (t) => {
  t.same(lagoFieldErrors({ 0: { transaction_id: ['value_already_exist'] }, events: 'too_many_events' }), [
    { field: '0.transaction_id', message: 'already exists', code: 'value_already_exist' },
    { field: 'events', message: 'too many events', code: 'too_many_events' }
  ])
  t.same(lagoFieldErrors(null), [])
})

t.test('whenNotFound replaces only Lago\'s 404', async (t) => {
  const replacement = new Error('named')
  t.equal(whenNotFound(apiError(404), () => replacement), replacement)
  const other = apiError(422)
  t.equal(whenNotFound(other, () => replacement), other)
  const plain = new Error('x')
  t.equal(whenNotFound(plain, () => replacement), plain)
  const planMissing = apiError(404, { code: 'plan_not_found' })
  t.equal(whenNotFound(planMissing, () => replacement, 'billable_metric_not_found'), planMissing, 'another resource\'s 404 is left alone')
  t.equal(whenNotFound(planMissing, () => replacement, 'plan_not_found'), replacement)
})
