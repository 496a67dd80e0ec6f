import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { GenericBody, GenericResponse } from '../../../../schemas/litellm.js'
import { ErrorResponse, errorBody, errorResponses } from '../../../../schemas/errors.js'
import { Type } from '@sinclair/typebox'
import { WEBHOOK_AUTH } from '../../../../schemas/common.js'
import { jsonOrNdjsonParser } from '../../../../plugins/external/json-text.js'
import { readStandardPayloads, storeStandardPayloads } from './ingest.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  const maxPayloads = fastify.config.GENERIC_MAX_PAYLOADS

  // This route only: LiteLLM's ndjson log_format is sent as application/json too.
  const parse = jsonOrNdjsonParser(fastify.getDefaultJsonParser('error', 'error'))
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    request.rawBody = body as string
    parse(request, body as string, done)
  })

  fastify.post('/', {
    bodyLimit: fastify.config.GENERIC_BODY_LIMIT_BYTES,
    // Each payload's text is checked on its own (standard-logging-payload.ts): one bad payload fails alone.
    // The ingestion limit of ../autohooks.ts instead of the general one.
    config: { rateLimit: false, ownBodyTextChecks: true },
    schema: {
      security: WEBHOOK_AUTH,
      tags: ['ingestion'],
      operationId: 'ingestLiteLLMGenericApi',
      summary: 'LiteLLM\'s generic_api logger: StandardLoggingPayload batches',
      description: `Takes what LiteLLM's generic_api callback posts: a JSON array of StandardLoggingPayload (up to ${maxPayloads}; ` +
        'null elements are skipped), NDJSON lines, or one object. Each call is stored once, keyed by litellm_call_id ' +
        '(else id): resends, double-fired callbacks and the same call pulled from spend logs are duplicates. Failed ' +
        'calls are stored as not_billable; calls with no customer wait as unmapped. Messages, responses and any other ' +
        'prompt or completion text are never stored. 202 when something new was stored, 200 when everything was ' +
        'already known, 400 when nothing could be stored (no item is a LiteLLM payload, or each was refused).',
      body: GenericBody(maxPayloads),
      response: {
        200: GenericResponse,
        202: GenericResponse,
        400: Type.Union([Type.Composite([ErrorResponse, GenericResponse]), ErrorResponse]),
        ...errorResponses(401, 413, 415, 503)
      }
    }
  }, async (request, reply) => {
    const delivery = readStandardPayloads(Array.isArray(request.body) ? request.body : [request.body], new Date())
    const notPayloads = delivery.result.rejected
    // The parsed batch (512 payloads with their messages: megabytes of objects) is not needed once read: let go of it
    // before the write, so that it dies young. Held through the write (50-100 ms), it was copied by the young
    // generation's collections and promoted (docs/bench/HISTORY.md).
    request.body = []
    request.rawBody = undefined
    const result = await storeStandardPayloads(delivery, async (calls, source) => await fastify.litellm.store(calls, source, request.organizationId))
    if (result.rejected > 0) fastify.usageEvents.rejected('generic_api', result.rejected)
    if (result.accepted > 0) return reply.code(202).send(result)
    if (result.duplicate > 0 || result.conflict > 0 || result.rejected === 0) return reply.code(200).send(result)
    // Refused while reading: not payloads. Refused while storing (after notPayloads was read): payloads not stored.
    const noneWas = notPayloads === result.rejected ? 'is a LiteLLM StandardLoggingPayload' : 'could be stored'
    return reply.code(400).send({
      ...errorBody(400, 'no_valid_events', `None of the ${result.received} items ${noneWas}: ${result.problems[0]?.message ?? ''}`),
      ...result
    })
  })
}

export default plugin
