import { createHash } from 'node:crypto'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { DATABASE_RETRY_AFTER_SECONDS, databaseUnavailable, databaseUnavailableMessage } from '../../../../db/errors.js'
import type { LagoErrorBody, LagoEventObjectBody } from '../../../../schemas/lago-events.js'
import { isObject, readCloudEvent, readLagoEvent, type LagoEventEcho, type LagoFieldErrors, type LiteLLMCall, type StoreCalls } from '../../../../plugins/app/litellm/index.js'

/** Lago's batch limit (LAGO_EVENTS_BATCH_MAX_LENGTH, 100 by default). */
export const LAGO_BATCH_MAX = 100

export interface IngestContext {
  store: StoreCalls
  receivedAt: Date
  /** LAGO_EVENTS_DEDUPE_WINDOW_MS */
  dedupeWindowMs: number
}

/** An HTTP answer: status and body. */
export interface Answer<S extends number, B> { status: S, body: B }

type LagoFailure = Answer<400 | 422, LagoErrorBody>

/** Lago's error bodies (app/controllers/concerns/api_errors.rb). */
export const lagoError = {
  badRequest: (message: string): LagoErrorBody => ({ status: 400, error: `BadRequest: ${message}` }),
  missingParam: (name: string): LagoErrorBody => ({ status: 400, error: `BadRequest: param is missing or the value is empty: ${name}` }),
  unauthorized: (): LagoErrorBody => ({ status: 401, error: 'Unauthorized' }),
  validation: (details: Record<string, unknown>): LagoErrorBody => ({ status: 422, error: 'Unprocessable Entity', code: 'validation_errors', error_details: details })
}

/** A UUID derived from the idempotency key: a resend is answered with the same lago_id. */
function uuidFromKey (key: string): string {
  const h = createHash('sha256').update(key).digest('hex')
  const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`
}

/** Lago's EventObject for an accepted event (lago_customer_id and lago_subscription_id are null: Lago resolves them later too). */
export function lagoEventObject (echo: LagoEventEcho, receivedAt: Date): LagoEventObjectBody {
  return {
    lago_id: uuidFromKey(echo.transactionId),
    transaction_id: echo.transactionId,
    lago_customer_id: null,
    code: echo.code,
    timestamp: echo.timestamp.toISOString(),
    precise_total_amount_cents: echo.preciseTotalAmountCents,
    properties: echo.properties,
    lago_subscription_id: null,
    external_subscription_id: echo.externalSubscriptionId,
    created_at: receivedAt.toISOString()
  }
}

const ALREADY_EXISTS: LagoFieldErrors = { transaction_id: ['value_already_exist'] }

/** An event the store refused (what it holds cannot be stored), as Lago's per-field error. */
const unstorable = (o: { field: string }): LagoFieldErrors => ({ [o.field.replace(/^\//, '') || 'event']: ['value_is_invalid'] })

/**
 * POST /api/v1/events with Lago's body. A resend of a stored transaction_id with the same content is answered
 * 200 (as Lago's ClickHouse store does), since LiteLLM re-sends a POST once on a dropped connection; the same
 * transaction_id with different content is Lago's 422 value_already_exist.
 */
export async function createLagoEvent (body: unknown, ctx: IngestContext): Promise<Answer<200, { event: LagoEventObjectBody }> | LagoFailure> {
  if (!isObject(body) || !isObject(body.event)) return { status: 400, body: lagoError.missingParam('event') }
  const read = readLagoEvent(body.event, ctx.receivedAt, ctx.dedupeWindowMs)
  if ('errors' in read) return { status: 422, body: lagoError.validation(read.errors) }
  const [outcome] = await ctx.store([read.call], 'lago_callback')
  if (outcome.status === 'rejected') return { status: 422, body: lagoError.validation(unstorable(outcome)) }
  if (outcome.status === 'conflict') return { status: 422, body: lagoError.validation(ALREADY_EXISTS) }
  return { status: 200, body: { event: lagoEventObject(read.echo, ctx.receivedAt) } }
}

/**
 * POST /api/v1/events/batch. Like Lago, a batch with an invalid event (or a transaction_id twice) stores nothing
 * and answers 422 with the errors keyed by index. Unlike Lago, a transaction_id already stored is not an error
 * when its content is the same (a resend), and one stored with different content fails only its own index:
 * the other events are kept, so resending the corrected batch is safe.
 */
export async function createLagoBatch (body: unknown, ctx: IngestContext): Promise<Answer<200, { events: LagoEventObjectBody[] }> | LagoFailure> {
  if (!isObject(body)) return { status: 400, body: lagoError.missingParam('events') }
  const items = body.events
  if (!Array.isArray(items) || items.length === 0) return { status: 422, body: lagoError.validation({ events: ['no_events'] }) }
  if (items.length > LAGO_BATCH_MAX) return { status: 422, body: lagoError.validation({ events: ['too_many_events'] }) }

  const details: Record<string, LagoFieldErrors> = {}
  const reads: Array<{ call: LiteLLMCall, echo: LagoEventEcho }> = []
  const seen = new Set<string>()
  for (const [i, item] of items.entries()) {
    const read = readLagoEvent(item, ctx.receivedAt, ctx.dedupeWindowMs)
    if ('errors' in read) {
      details[String(i)] = read.errors
    } else if (seen.has(read.echo.transactionId)) {
      details[String(i)] = ALREADY_EXISTS
    } else {
      seen.add(read.echo.transactionId)
      reads.push(read)
    }
  }
  if (Object.keys(details).length > 0) return { status: 422, body: lagoError.validation(details) }

  const outcomes = await ctx.store(reads.map((r) => r.call), 'lago_callback')
  // Stored events stay stored (a resend of the corrected batch is safe): only the failing indexes are reported.
  for (const [i, o] of outcomes.entries()) {
    if (o.status === 'conflict') details[String(i)] = ALREADY_EXISTS
    else if (o.status === 'rejected') details[String(i)] = unstorable(o)
  }
  if (Object.keys(details).length > 0) return { status: 422, body: lagoError.validation(details) }
  return { status: 200, body: { events: reads.map((r) => lagoEventObject(r.echo, ctx.receivedAt)) } }
}

/**
 * CloudEvents on POST /api/v1/events (LiteLLM's `openmeter` callback sends one per call; an array is accepted as
 * OpenMeter's batch). Answers 204 like OpenMeter. Valid events are stored even when others are not; the invalid
 * ones are listed in a 400 keyed by index.
 */
export async function ingestCloudEvents (body: unknown, ctx: IngestContext): Promise<Answer<204, null> | Answer<400, LagoErrorBody>> {
  const events = Array.isArray(body) ? body : [body]
  if (events.length === 0) return { status: 400, body: lagoError.badRequest('the CloudEvents batch is empty') }
  const calls: Array<{ index: number, call: LiteLLMCall }> = []
  const problems: Record<string, string> = {}
  for (const [i, event] of events.entries()) {
    const read = readCloudEvent(event, ctx.receivedAt)
    if ('call' in read) calls.push({ index: i, call: read.call })
    else problems[String(i)] = read.rejected
  }
  const outcomes = await ctx.store(calls.map((c) => c.call), 'openmeter')
  for (const [i, o] of outcomes.entries()) if (o.status === 'rejected') problems[String(calls[i].index)] = `${o.field} ${o.message}`
  const rejected = Object.keys(problems)
  if (rejected.length > 0) {
    return {
      status: 400,
      body: { status: 400, error: `BadRequest: ${rejected.length} of ${events.length} CloudEvents are invalid: ${problems[rejected[0]]}`, code: 'invalid_cloudevent', error_details: problems }
    }
  }
  return { status: 204, body: null }
}

/** Any error on the Lago endpoints, in Lago's shape (LiteLLM and Lago clients read these). */
function lagoErrorOf (err: FastifyError): { status: number, body: LagoErrorBody, log: boolean } {
  // Logged once per outage by the connection layer (plugins/external/db.ts), not once per request.
  if (databaseUnavailable(err)) return { status: 503, body: { status: 503, error: `Service Unavailable: ${databaseUnavailableMessage(err)}`, code: 'database_unavailable' }, log: false }
  const status = err.statusCode !== undefined && err.statusCode >= 400 ? err.statusCode : 500
  if (status === 401) return { status, body: lagoError.unauthorized(), log: false }
  if (status === 400) return { status, body: lagoError.badRequest(err.message), log: false }
  if (status === 413) return { status, body: { status, error: 'Payload Too Large', code: 'payload_too_large' }, log: false }
  if (status === 415) return { status, body: { status, error: 'Unsupported Media Type', code: String(err.code).toLowerCase() === 'unsupported_content_encoding' ? 'unsupported_content_encoding' : 'unsupported_media_type' }, log: false }
  if (status === 503 && err.code === 'shutting_down') return { status, body: { status, error: 'Service Unavailable', code: 'shutting_down' }, log: false }
  if (status < 500) return { status, body: { status, error: err.message }, log: false }
  return { status, body: { status, error: 'Internal Server Error' }, log: true }
}

/** Route error handler of the Lago endpoints: Lago's error shapes, server errors logged. */
export function lagoErrorHandler (err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const { status, body, log } = lagoErrorOf(err)
  if (log) request.log.error({ err }, 'Lago events request failed')
  if (databaseUnavailable(err)) {
    request.server.dbAvailability.refused(err)
    reply.header('retry-after', DATABASE_RETRY_AFTER_SECONDS)
  }
  return reply.code(status).send(body)
}

/** The context one request ingests with. */
export function ingestContext (fastify: FastifyInstance, request: FastifyRequest): IngestContext {
  const { organizationId } = request
  return { store: async (calls, source) => await fastify.litellm.store(calls, source, organizationId), receivedAt: new Date(), dedupeWindowMs: fastify.config.LAGO_EVENTS_DEDUPE_WINDOW_MS }
}
