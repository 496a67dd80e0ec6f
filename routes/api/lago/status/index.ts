import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { LagoStatusResponse } from '../../../../schemas/dashboard.js'
import { errorResponses } from '../../../../schemas/errors.js'
import { ORGANIZATION_SCOPE } from '../../../../schemas/organizations.js'
import { DEFAULT_ORGANIZATION_ID } from '../../../../db/database.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['forwarding'],
      operationId: 'getLagoStatus',
      summary: 'This service and Lago: bootstrap of the billing defaults, forwarder state, last delivery',
      description: 'Answers without calling Lago. bootstrap and forwarder are this replica\'s; the last delivery is ' +
        'the last batch of the organization\'s usage events any replica sent. ' + ORGANIZATION_SCOPE,
      response: { 200: LagoStatusResponse, ...errorResponses(404, 503) }
    }
  }, async (request) => {
    const id = request.organizationId
    const [delivery, forwarder, organization] = await Promise.all([fastify.dashboard.lastDelivery(id), fastify.forwarder.stateOf(id), fastify.organizations.get(id)])
    return {
      // default's Lago is the service's own (LAGO_API_URL, LAGO_API_KEY) unless the organization was given a key.
      configured: organization?.hasLagoApiKey === true || (id === DEFAULT_ORGANIZATION_ID && fastify.lago.configured),
      bootstrap: fastify.bootstrap.state(id),
      forwarder,
      last_delivery: delivery === null
        ? null
        : { at: delivery.created_at.toISOString(), endpoint: delivery.endpoint, http_status: delivery.http_status, events: delivery.request_count, error: delivery.error }
    }
  })
}

export default plugin
