import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BODY_ERRORS, errorResponses } from '../../../../../schemas/errors.js'
import { ApiKeyList, ApiKeyRequest, apiKeyBody, IssuedApiKey, OrganizationParams } from '../../../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'listOrganizationApiKeys',
      summary: 'An organization\'s service API keys, live and revoked, by name and prefix (admin key)',
      description: 'Never the keys themselves: only their SHA-256 is stored.',
      params: OrganizationParams,
      response: { 200: ApiKeyList, ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request) => ({ api_keys: (await fastify.organizations.apiKeys(request.params.id)).map(apiKeyBody) }))

  fastify.post('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'issueOrganizationApiKey',
      summary: 'Issue a new service API key of an organization, shown once (admin key)',
      description: 'The key sees only this organization: another organization\'s customers, usage and invoices are ' +
        '404 to it. Only its SHA-256 is stored; POST .../api-keys/{key_id}/revoke revokes it. 409 when a live key has this name.',
      params: OrganizationParams,
      body: ApiKeyRequest,
      response: { 201: IssuedApiKey, ...errorResponses(...BODY_ERRORS, 401, 403, 404, 409, 503) }
    }
  }, async (request, reply) => {
    const issued = await fastify.organizations.issueApiKey(request.params.id, request.body?.name)
    return reply.code(201).send({ api_key: issued.key, id: issued.keyId, name: issued.name, prefix: issued.prefix, created_at: issued.createdAt.toISOString() })
  })
}

export default plugin
