import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'

/** Version of the HTTP API the document describes (not of the package). */
const API_VERSION = '1.0.0'

/**
 * The OpenAPI document, generated from the route schemas (dynamic mode): registered before the routes so that it
 * sees them all. Untagged routes stay out of it. `GET /docs` serves Swagger UI, `GET /docs/json` the document.
 */
export default fp(async function openapi (fastify) {
  await fastify.register(swagger, {
    openapi: {
      // 3.1: its schemas are JSON Schema 2020-12, which the TypeBox route schemas are (null types, const...).
      openapi: '3.1.0',
      info: {
        title: 'lago-api-integration',
        version: API_VERSION,
        description: 'Bills LiteLLM usage through Lago: ingestion of usage events, and a REST API over Lago ' +
          '(customers, plans, billable metrics, invoices, usage). Errors always have the shape ' +
          '{ statusCode, error, code, message, details? }.'
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'A service API key (API_KEYS, or created with `npm run keys -- create <name>`) or the Lago API key'
          },
          webhookToken: {
            type: 'http',
            scheme: 'bearer',
            description: 'One of WEBHOOK_TOKENS (ingestion webhooks; open when neither WEBHOOK_TOKENS nor WEBHOOK_SECRET is set)'
          },
          webhookSignature: {
            type: 'apiKey',
            in: 'header',
            name: 'webhook-signature',
            description: 'A Standard Webhooks signature with WEBHOOK_SECRET (default organization) or an organization\'s webhook_secret (routes to it), plus the webhook-id and webhook-timestamp headers'
          }
        }
      },
      tags: [
        { name: 'customers', description: 'Lago customers and their subscription' },
        { name: 'plans', description: 'Lago plans and their charges' },
        { name: 'billable-metrics', description: 'Lago billable metrics' },
        { name: 'invoices', description: 'Lago invoices' },
        { name: 'usage', description: 'Usage from the stored events, and the open period from Lago' },
        { name: 'ingestion', description: 'LiteLLM usage events in' },
        { name: 'forwarding', description: 'Forwarding of usage events to Lago' },
        { name: 'lago-webhooks', description: 'Lago\'s outgoing webhooks: received, verified, acted on' },
        { name: 'billing', description: 'Billing audit: what was forwarded against what Lago bills' },
        { name: 'health', description: 'Liveness, readiness and metrics' }
      ]
    },
    hideUntagged: true,
    // A route declared as '/' in its folder answers with and without the trailing slash; document the URL without.
    transform: ({ schema, url }) => ({ schema, url: url.length > 1 ? url.replace(/\/$/, '') : url })
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs' })
}, { name: 'openapi' })
