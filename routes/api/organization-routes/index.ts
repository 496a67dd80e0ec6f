import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BODY_ERRORS, errorResponses } from '../../../schemas/errors.js'
import { OrganizationRouteInput, OrganizationRouteList, OrganizationRouteSaved, routeBody } from '../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'listOrganizationRoutes',
      summary: 'Which LiteLLM org or team bills which organization, for a shared ingestion token (admin key)',
      response: { 200: OrganizationRouteList, ...errorResponses(401, 403, 503) }
    }
  }, async () => ({ routes: (await fastify.organizations.routes.list()).map(routeBody) }))

  fastify.post('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'putOrganizationRoute',
      summary: 'Route the calls of a LiteLLM org or team to an organization (creates or replaces; admin key)',
      description: 'Applies to calls that arrive with a shared credential (WEBHOOK_TOKENS, WEBHOOK_SECRET, or the ' +
        'default organization\'s tokens) once at least one route exists: the call\'s LiteLLM org decides, else its ' +
        'team. A call no route claims is kept as unmapped, with the reason, in the disabled organization `unrouted`; ' +
        'a route added later moves the waiting calls it claims to its organization (rerouted_events), where its customer ' +
        'mappings and identity order name their customer. 201 when created.',
      body: OrganizationRouteInput,
      response: { 200: OrganizationRouteSaved, 201: OrganizationRouteSaved, ...errorResponses(...BODY_ERRORS, 401, 403, 404, 503) }
    }
  }, async (request, reply) => {
    const { identity, value, organization_id: organizationId } = request.body
    const { row, created, moved } = await fastify.organizations.routes.put(identity, value, organizationId)
    // The moved calls get their customer from the organization's own mappings and identity order.
    if (moved > 0) {
      await fastify.customerMappings.releaseParked(organizationId)
      fastify.usageEvents.signals.emit('committed', moved)
    }
    return reply.code(created ? 201 : 200).send({ route: routeBody(row), rerouted_events: moved })
  })
}

export default plugin
