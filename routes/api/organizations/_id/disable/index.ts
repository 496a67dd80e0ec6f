import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../../../../schemas/errors.js'
import { OrganizationParams, OrganizationSaved, organizationBody } from '../../../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'disableOrganization',
      summary: 'Disable an organization (admin key)',
      description: 'Its ingestion tokens and API keys are refused from now on (401); its stored rows stay. ' +
        'PATCH with status active enables it again.',
      params: OrganizationParams,
      response: { 200: OrganizationSaved, ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request) => {
    const organization = await fastify.organizations.update(request.params.id, { status: 'disabled' })
    request.log.info({ organization: organization.id }, 'organization disabled')
    return { organization: organizationBody(organization) }
  })
}

export default plugin
