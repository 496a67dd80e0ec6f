import createError from '@fastify/error'
import { Type, type Static } from '@sinclair/typebox'

/** The one error shape every endpoint answers with. */
export const ErrorResponse = Type.Object({
  statusCode: Type.Integer({ description: 'HTTP status code, repeated for clients that only see the body' }),
  error: Type.String({ description: 'HTTP reason phrase' }),
  code: Type.String({ description: 'Stable machine-readable code, e.g. validation_error' }),
  message: Type.String({ description: 'What went wrong, for a person' }),
  details: Type.Optional(Type.Array(Type.Object({
    field: Type.String({ description: 'JSON path of the offending field, e.g. /tokens_input' }),
    message: Type.String()
  }, { additionalProperties: true })))
}, { description: 'Error' })
export type ErrorResponseBody = Static<typeof ErrorResponse>

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout'
}

/** An ErrorResponse body: the reason phrase follows from the status code. */
export function errorBody (statusCode: number, code: string, message: string, details?: ErrorResponseBody['details']): ErrorResponseBody {
  return { statusCode, error: REASONS[statusCode] ?? (statusCode >= 500 ? 'Server Error' : 'Client Error'), code, message, ...(details ? { details } : {}) }
}

/** Response schemas for the error statuses a route can answer with. */
export const errorResponses = <S extends number>(...statuses: S[]): Record<S, typeof ErrorResponse> =>
  Object.fromEntries(statuses.map((s) => [s, ErrorResponse])) as Record<S, typeof ErrorResponse>

/** What a route with a JSON body can answer: invalid, too large, not JSON. */
export const BODY_ERRORS = [400, 413, 415] as const
/** What a route that calls Lago can answer: Lago's 404 and 422, Lago failing (502) or unreachable (503). */
export const LAGO_ERRORS = [404, 422, 502, 503] as const

// Named errors: the code is the machine-readable contract, the message is for people.
export const UnauthorizedError = createError<[string]>('unauthorized', '%s', 401)
export const RequestIdConflictError = createError<[string]>(
  'request_id_conflict',
  'request_id "%s" was already accepted with different billing content; a new event needs a new request_id',
  409)
export const EmptyBatchError = createError('empty_batch', 'The batch holds no events', 400)

export const RateLimitedError = createError<[string]>('rate_limited', 'Too many requests: retry in %s', 429)

// Lago's answers, in this API's terms (the error handler maps whatever else Lago answers; see lago/http-errors.ts).
export const CustomerNotFoundError = createError<[string]>('customer_not_found', 'No customer with external_id "%s"', 404)
export const PlanNotFoundError = createError<[string]>('plan_not_found', 'No plan with code "%s"', 404)
export const BillableMetricNotFoundError = createError<[string]>('billable_metric_not_found', 'No billable metric with id or code %s', 404)
export const InvoiceNotFoundError = createError<[string]>('invoice_not_found', 'No invoice with id "%s"', 404)
export const InvoiceNotDownloadableError = createError<[string]>('invoice_not_found',
  'No finalized invoice with id "%s": only finalized invoices have a PDF', 404)
export const NoActiveSubscriptionError = createError<[string]>('no_active_subscription', 'Customer "%s" has no active subscription', 409)
export const InvalidRangeError = createError<[string]>('invalid_range', '%s', 400)

/** 5xx errors whose message is written for the client (no internals) and may be shown as is. */
export const EXPOSED_SERVER_ERRORS = new Set(['shutting_down', 'lago_unavailable', 'lago_not_configured', 'lago_error',
  'organization_secrets_not_configured', 'organization_secret_unreadable'])
export const CustomerMappingNotFoundError = createError<[string, string]>('customer_mapping_not_found', 'No customer mapping for %s "%s"', 404)

// Organizations (plugins/app/organizations).
export const OrganizationNotFoundError = createError<[string]>('organization_not_found', 'No organization "%s"', 404)
export const IngestionTokenNotFoundError = createError<[string, string]>('ingestion_token_not_found', 'Organization "%s" has no ingestion token %s', 404)
export const OrganizationApiKeyNotFoundError = createError<[string, string]>('api_key_not_found', 'Organization "%s" has no API key %s', 404)
export const OrganizationActiveError = createError<[string, string]>('organization_active',
  'Organization "%s" is active: disable it first (POST /api/organizations/%s/disable), then delete it', 409)
export const OrganizationProtectedError = createError<[string]>('organization_protected',
  'Organization "%s" belongs to the service itself and cannot be deleted', 409)
export const OrganizationExistsError = createError<[string]>('organization_exists', 'An organization "%s" already exists', 409)
export const OrganizationDisabledError = createError<[string]>('organization_disabled', 'Organization "%s" is disabled', 409)
export const OrganizationSecretsNotConfiguredError = createError('organization_secrets_not_configured',
  'ORGANIZATION_SECRETS_KEY is not set: an organization\'s Lago API key cannot be stored or read without it (openssl rand -base64 32)', 503)
export const OrganizationSecretUnreadableError = createError<[string]>('organization_secret_unreadable',
  'The stored Lago key of organization "%s" cannot be decrypted with ORGANIZATION_SECRETS_KEY (was the key changed?)', 503)
export const AdminRequiredError = createError('admin_required', 'This needs an admin key (ADMIN_API_KEYS)', 403)
export const OtherOrganizationForbiddenError = createError<[string]>('admin_required',
  'Only an admin key (ADMIN_API_KEYS) acts on another organization: this key belongs to "%s" (leave out X-Organization-Id, or name its own)', 403)

// Billing audit (plugins/app/billing-audit).
export const BillingAuditNotRunError = createError<[string, string]>('billing_audit_not_run',
  'No billing audit of organization "%s" has completed on this instance yet: %s', 404)
