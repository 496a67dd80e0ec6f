import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { WEBHOOK_AUTH } from '../../../../schemas/common.js'
import { Type } from '@sinclair/typebox'
import { CreateEventBody, LagoEventResponse, lagoErrorResponses } from '../../../../schemas/lago-events.js'
import { createLagoEvent, ingestCloudEvents, ingestContext } from './lago-api.js'
import { isCloudEvent } from '../../../../plugins/app/litellm/index.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    // The ingestion limit of ../autohooks.ts instead of the general one; text is checked field by field by the
    // readers (lago-event.ts, cloud-event.ts) and refused in Lago's shape.
    config: { rateLimit: false, ownBodyTextChecks: true },
    schema: {
      tags: ['lago-compatible'],
      operationId: 'createLagoEvent',
      summary: 'Drop-in for Lago\'s POST /api/v1/events (LiteLLM lago callback) and OpenMeter CloudEvents (LiteLLM openmeter callback)',
      description: 'A Lago event ({"event": {…}}) is stored as a usage event and answered like Lago: 200 {"event": …}, 422 ' +
        'validation_errors, 400 when the event root key is missing. A CloudEvent (a body with specversion, sent as ' +
        'application/cloudevents+json) or an array of them is stored and answered 204, like OpenMeter. Authenticate ' +
        'with a WEBHOOK_TOKENS token as Bearer (LiteLLM: LAGO_API_KEY / OPENMETER_API_KEY).',
      security: WEBHOOK_AUTH,
      body: CreateEventBody,
      response: { 200: LagoEventResponse, 204: Type.Null(), ...lagoErrorResponses(400, 401, 413, 415, 422, 503) }
    }
  }, async (request, reply) => {
    const ctx = ingestContext(fastify, request)
    const cloudEvents = isCloudEvent(request.body) || (Array.isArray(request.body) && request.body.some(isCloudEvent)) ||
      request.headers['content-type']?.startsWith('application/cloudevents') === true
    const answer = cloudEvents ? await ingestCloudEvents(request.body, ctx) : await createLagoEvent(request.body, ctx)
    return await reply.code(answer.status).send(answer.body)
  })
}

export default plugin
