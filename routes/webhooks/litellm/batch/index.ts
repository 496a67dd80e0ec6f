import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BatchBody, BatchResponse, LiteLLMUsageEvent, type BatchResponseBody, type LiteLLMUsageEventInput } from '../../../../schemas/usage-events.js'
import { EmptyBatchError, ErrorResponse, errorBody, errorResponses } from '../../../../schemas/errors.js'
import { compileBodyValidator, validationDetails } from '../../../../schemas/validation.js'
import { WEBHOOK_AUTH } from '../../../../schemas/common.js'
import { fromLiteLLMEvent, type UsageEvent } from '../../../../plugins/app/usage-events/index.js'

const SOURCE = 'webhook_batch'
const validateEvent = compileBodyValidator<LiteLLMUsageEventInput>(LiteLLMUsageEvent)

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  const maxEvents = fastify.config.WEBHOOK_BATCH_MAX_EVENTS

  fastify.post('/', {
    bodyLimit: fastify.config.WEBHOOK_BATCH_BODY_LIMIT_BYTES,
    // Each item's text is checked with its schema (compileBodyValidator): one bad item fails alone.
    // The ingestion limit of ../autohooks.ts instead of the general one.
    config: { rateLimit: false, ownBodyTextChecks: true },
    schema: {
      tags: ['ingestion'],
      security: WEBHOOK_AUTH,
      operationId: 'ingestUsageEventBatch',
      summary: `Store up to ${maxEvents} LiteLLM usage events`,
      description: 'Each item is validated and stored on its own: one bad item never costs the others. Answers 202 when ' +
        'anything new was stored, 200 when every valid item was already stored, 400 when no item could be stored; ' +
        'the body lists every item by index as accepted, duplicate, conflict or rejected (with reasons).',
      body: BatchBody(maxEvents),
      response: {
        200: BatchResponse,
        202: BatchResponse,
        400: Type.Union([Type.Composite([ErrorResponse, BatchResponse]), ErrorResponse]),
        ...errorResponses(401, 413, 415, 503)
      }
    }
  }, async (request, reply) => {
    const items = Array.isArray(request.body) ? request.body : request.body.events
    if (items.length === 0) throw new EmptyBatchError()

    const receivedAt = new Date()
    const result: BatchResponseBody = { accepted: 0, duplicate: 0, conflict: 0, rejected: 0, results: [] }
    const valid: Array<{ index: number, event: UsageEvent }> = []
    for (const [index, item] of items.entries()) {
      if (validateEvent(item)) {
        const event = fromLiteLLMEvent(item, SOURCE, receivedAt)
        // Set on the new object, not spread into a copy: a spread is the slow path of object creation, per event.
        event.organizationId = request.organizationId
        valid.push({ index, event })
      } else {
        const errors = validationDetails(validateEvent.errors ?? [])
        result.results[index] = {
          index,
          status: 'rejected',
          ...(requestIdOf(item) !== undefined ? { request_id: requestIdOf(item) } : {}),
          message: errors.map((e) => `${e.field} ${e.message}`).join('; '),
          errors
        }
        result.rejected++
      }
    }
    if (result.rejected > 0) fastify.usageEvents.rejected(SOURCE, result.rejected)

    // The parsed batch and its text are not needed once read: let go of them before the write, so that they die
    // young rather than be copied by the young generation's collections while the write waits (as generic_api does).
    const received = items.length
    request.body = []
    request.rawBody = undefined
    const outcomes = valid.length > 0 ? await fastify.usageEvents.ingest(valid.map((v) => v.event)) : []
    for (const [i, { index, event }] of valid.entries()) {
      const outcome = outcomes[i]
      if (outcome.status === 'rejected') {
        const errors = [{ field: outcome.field, message: outcome.message }]
        result.results[index] = { index, status: 'rejected', request_id: event.requestId, message: `${outcome.field} ${outcome.message}`, errors }
        result.rejected++
        continue
      }
      const { status, id } = outcome
      result.results[index] = {
        index,
        status,
        request_id: event.requestId,
        id,
        ...(status === 'conflict' ? { message: 'request_id already stored with different billing content' } : {})
      }
      result[status]++
    }

    if (result.accepted > 0) return reply.code(202).send(result)
    if (result.duplicate > 0) return reply.code(200).send(result)
    return reply.code(400).send({
      ...errorBody(400, 'no_valid_events', `None of the ${received} events could be stored: ${result.rejected} rejected, ${result.conflict} conflicting`),
      ...result
    })
  })
}

function requestIdOf (item: unknown): string | undefined {
  const id = typeof item === 'object' && item !== null ? (item as { request_id?: unknown }).request_id : undefined
  return typeof id === 'string' ? id : undefined
}

export default plugin
