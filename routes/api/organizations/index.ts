import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BODY_ERRORS, errorResponses } from '../../../schemas/errors.js'
import { OrganizationCreate, OrganizationCreated, OrganizationList, organizationBody, organizationSettings } from '../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'listOrganizations',
      summary: 'Every organization (admin key)',
      response: { 200: OrganizationList, ...errorResponses(401, 403, 503) }
    }
  }, async () => ({ organizations: (await fastify.organizations.list()).map(organizationBody) }))

  fastify.post('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'createOrganization',
      summary: 'Add an organization: one Lago organization to bill into (admin key)',
      description: 'Stores its Lago API key encrypted (needs ORGANIZATION_SECRETS_KEY: else 503 ' +
        'organization_secrets_not_configured, and nothing is stored). Answers 201 with the organization and, this once, ' +
        'an ingestion token (Bearer token of its ingestion webhooks) and a service API key that sees only it. ' +
        '409 organization_exists when the id (or its lago_organization_id) is taken.',
      body: OrganizationCreate,
      response: { 201: OrganizationCreated, ...errorResponses(...BODY_ERRORS, 401, 403, 409, 503) }
    }
  }, async (request, reply) => {
    const b = request.body
    const organization = await fastify.organizations.create({ ...organizationSettings(b), id: b.id, name: b.name, lagoApiKey: b.lago_api_key })
    const token = await fastify.organizations.issueIngestionToken(organization.id)
    const key = await fastify.organizations.issueApiKey(organization.id, `${organization.id}-initial`)
    request.log.info({ organization: organization.id }, 'organization created')
    return reply.code(201).send({ organization: organizationBody(organization), ingestion_token: token.token, api_key: key.key })
  })
}

export default plugin
