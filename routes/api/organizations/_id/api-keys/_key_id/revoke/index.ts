import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../../../../../../schemas/errors.js'
import { ApiKeyParams, ApiKeyRevoked, apiKeyBody } from '../../../../../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'revokeOrganizationApiKey',
      summary: 'Revoke one of an organization\'s service API keys (admin key)',
      description: 'Requests with it are refused (401) from the next one on, on every instance (keys are looked up in ' +
        'the database on each request, not cached). Its other keys stay valid. Revoking a revoked key changes nothing. ' +
        '404 api_key_not_found when the organization has no key with this id (ADMIN_API_KEYS and API_KEYS are ' +
        'configuration: remove them from the environment).',
      params: ApiKeyParams,
      response: { 200: ApiKeyRevoked, ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request) => {
    const { id, key_id: keyId } = request.params
    const revoked = await fastify.organizations.revokeApiKey(id, keyId)
    request.log.info({ organization: id, apiKey: revoked.id, name: revoked.name }, 'API key revoked')
    return { api_key: apiKeyBody(revoked) }
  })
}

export default plugin
