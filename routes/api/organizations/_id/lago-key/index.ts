import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BODY_ERRORS, errorResponses } from '../../../../../schemas/errors.js'
import { LagoKeyRotation, OrganizationParams, OrganizationSaved, organizationBody } from '../../../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.put('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'rotateOrganizationLagoKey',
      summary: 'Replace an organization\'s Lago API key (admin key)',
      description: 'Stored encrypted; its Lago client is rebuilt with the new key (requests in flight finish with the old one).',
      params: OrganizationParams,
      body: LagoKeyRotation,
      response: { 200: OrganizationSaved, ...errorResponses(...BODY_ERRORS, 401, 403, 404, 503) }
    }
  }, async (request) => {
    const organization = await fastify.organizations.rotateLagoKey(request.params.id, request.body.lago_api_key)
    request.log.info({ organization: organization.id }, 'organization Lago key rotated')
    return { organization: organizationBody(organization) }
  })
}

export default plugin
