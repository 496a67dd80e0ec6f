import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../../../../schemas/errors.js'
import { credentialBody, IngestionTokenList, IssuedIngestionToken, OrganizationParams } from '../../../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'listOrganizationIngestionTokens',
      summary: 'An organization\'s ingestion tokens, live and revoked, by their prefix (admin key)',
      description: 'Never the tokens themselves: only their SHA-256 is stored.',
      params: OrganizationParams,
      response: { 200: IngestionTokenList, ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request) => ({ ingestion_tokens: (await fastify.organizations.ingestionTokens(request.params.id)).map(credentialBody) }))

  fastify.post('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'issueOrganizationIngestionToken',
      summary: 'Issue a new ingestion token of an organization, shown once (admin key)',
      description: 'Events sent with it (Authorization: Bearer <token>) are stored under this organization. Earlier ' +
        'tokens stay valid until revoked, so LiteLLM can be moved to the new one without a gap. Only its SHA-256 is stored.',
      params: OrganizationParams,
      response: { 201: IssuedIngestionToken, ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request, reply) => {
    const issued = await fastify.organizations.issueIngestionToken(request.params.id)
    return reply.code(201).send({ ingestion_token: issued.token, id: issued.tokenId, prefix: issued.prefix, created_at: issued.createdAt.toISOString() })
  })
}

export default plugin
