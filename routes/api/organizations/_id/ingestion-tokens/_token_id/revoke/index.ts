import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../../../../../../schemas/errors.js'
import { credentialBody, IngestionTokenParams, IngestionTokenRevoked } from '../../../../../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'revokeOrganizationIngestionToken',
      summary: 'Revoke one of an organization\'s ingestion tokens (admin key)',
      description: 'Requests carrying it are refused (401) from now on, even where ingestion is open (WEBHOOK_AUTH=none): ' +
        'at once on the instance that answers, within the organizations refresh interval (5 s) on the others. Its ' +
        'other tokens stay valid. Revoking a revoked token changes nothing (its first revocation time stays). 404 ' +
        'ingestion_token_not_found when the organization has no token with this id.',
      params: IngestionTokenParams,
      response: { 200: IngestionTokenRevoked, ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request) => {
    const { id, token_id: tokenId } = request.params
    const revoked = await fastify.organizations.revokeIngestionToken(id, tokenId)
    request.log.info({ organization: id, ingestionToken: revoked.id, prefix: revoked.prefix }, 'ingestion token revoked')
    return { ingestion_token: credentialBody(revoked) }
  })
}

export default plugin
