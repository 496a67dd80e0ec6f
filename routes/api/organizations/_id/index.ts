import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BODY_ERRORS, errorResponses, OrganizationNotFoundError } from '../../../../schemas/errors.js'
import { OrganizationDeleted, OrganizationParams, OrganizationSaved, OrganizationUpdate, organizationBody, organizationSettings } from '../../../../schemas/organizations.js'

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'getOrganization',
      summary: 'One organization (admin key)',
      params: OrganizationParams,
      response: { 200: OrganizationSaved, ...errorResponses(400, 401, 403, 404, 503) }
    }
  }, async (request) => {
    const organization = await fastify.organizations.get(request.params.id)
    if (organization === null) throw new OrganizationNotFoundError(request.params.id)
    return { organization: organizationBody(organization) }
  })

  fastify.patch('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'updateOrganization',
      summary: 'Change an organization\'s name, Lago URL, defaults or status (admin key)',
      description: 'Fields left out stay as they are; null returns a default to the service\'s own. status disabled ' +
        'stops its ingestion tokens and API keys at once (401), active brings them back.',
      params: OrganizationParams,
      body: OrganizationUpdate,
      response: { 200: OrganizationSaved, ...errorResponses(...BODY_ERRORS, 401, 403, 404, 409, 503) }
    }
  }, async (request) => {
    const b = request.body
    const organization = await fastify.organizations.update(request.params.id, { ...organizationSettings(b), status: b.status })
    request.log.info({ organization: organization.id, fields: Object.keys(b) }, 'organization updated')
    return { organization: organizationBody(organization) }
  })

  fastify.delete('/', {
    schema: {
      tags: ['organizations'],
      operationId: 'deleteOrganization',
      summary: 'Delete a disabled organization and every row it owns (admin key)',
      description: 'Purges, in one transaction (all or nothing), its usage events, customers, mappings, spend ledger, ' +
        'delivery logs, reconciliation cursor, Lago webhooks and invoices, API keys, ingestion tokens and organization ' +
        'routes, then the organization; answers the rows deleted per table. Irreversible; nothing is sent to or ' +
        'deleted from its Lago. 409 organization_active unless it was disabled first (POST .../disable); 409 ' +
        'organization_protected for default and unrouted. Its ingestion tokens stay refused (401), even where ' +
        'ingestion is open. The id can then be used again.',
      params: OrganizationParams,
      response: { 200: OrganizationDeleted, ...errorResponses(400, 401, 403, 404, 409, 503) }
    }
  }, async (request) => {
    const deleted = await fastify.organizations.delete(request.params.id)
    request.log.warn({ organization: request.params.id, deleted }, 'organization deleted with its rows')
    return { id: request.params.id, deleted_rows: deleted }
  })
}

export default plugin
