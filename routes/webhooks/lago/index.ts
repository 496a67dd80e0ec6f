import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { LagoWebhookAck } from '../../../schemas/lago-webhooks.js'
import { errorBody, errorResponses } from '../../../schemas/errors.js'
import { PublicKeyUnavailableError, WebhookSignatureError } from '../../../plugins/app/lago-webhooks/index.js'

const header = (value: string | string[] | undefined): string | undefined => Array.isArray(value) ? value[0] : value
const UNAUTHORIZED = errorBody(401, 'invalid_signature', 'The Lago webhook signature is missing or does not verify')

const plugin: FastifyPluginAsyncTypebox = async (fastify) => {
  // Lago can deliver bursts (invoices at period end): the ingestion endpoints' higher limit, not the general one.
  fastify.addHook('onRoute', fastify.ingestionRateLimit.onRoute)
  fastify.addHook('onRequest', fastify.ingestionRateLimit.onRequest)

  // The signature covers the exact bytes: this route reads the body as bytes, and parses it only once verified.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })

  fastify.post('/', {
    config: { rateLimit: false },
    schema: {
      tags: ['lago-webhooks'],
      operationId: 'receiveLagoWebhook',
      summary: 'Lago\'s outgoing webhooks (register <PUBLIC_URL>/webhooks/lago as a Lago webhook endpoint)',
      description: 'Routed by the body\'s organization_id (Lago\'s id of the organization; an id not known yet is learned ' +
        'from each organization\'s own Lago) to one of our organizations, then verified on the raw body with that ' +
        'organization\'s key before anything else: X-Lago-Signature-Algorithm jwt (RS256, iss = Lago\'s URL, ' +
        'data = the body; the public key its Lago publishes is fetched and cached) or hmac (base64 HMAC-SHA256 with the ' +
        'organization\'s HMAC key; default: LAGO_WEBHOOK_HMAC_KEY). An organization that is none of ours, anything ' +
        'unsigned or forged: 401, nothing stored. Stored once per X-Lago-Unique-Key (a retry answers 200 ' +
        'duplicate), then acted on asynchronously: event errors mark usage events lago_error, subscription changes ' +
        'redirect or hold usage, invoices are kept locally. 503 only when Lago\'s public key cannot be fetched or ' +
        'PostgreSQL is down (Lago retries).',
      body: Type.Unknown({ description: '{"webhook_type", "object_type", "organization_id", <object_type>: {…}} as Lago sends it' }),
      response: { 200: LagoWebhookAck, ...errorResponses(400, 401, 413, 503) }
    },
    // Headers first: an unsigned delivery is refused before its body is read.
    onRequest: async (request, reply) => {
      const algo = header(request.headers['x-lago-signature-algorithm'])
      if (header(request.headers['x-lago-signature']) === undefined || (algo !== 'jwt' && algo !== 'hmac')) {
        fastify.lagoWebhooks.refused('unsigned or unknown algorithm')
        return await reply.code(401).send(UNAUTHORIZED)
      }
    }
  }, async (request, reply) => {
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)
    // The body names Lago's organization, which decides whose key verifies it; nothing is trusted before that.
    let body: unknown
    let parsed = true
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch {
      parsed = false
    }
    const envelope = parsed && typeof body === 'object' && body !== null && !Array.isArray(body) ? body as Record<string, unknown> : null
    const lagoOrganizationId = typeof envelope?.organization_id === 'string' && envelope.organization_id !== '' ? envelope.organization_id : null
    const routed = await fastify.lagoWebhooks.route(lagoOrganizationId)
    if ('unknown' in routed) {
      fastify.lagoWebhooks.refused(routed.unknown)
      return await reply.code(401).send(UNAUTHORIZED)
    }
    if ('unavailable' in routed) {
      request.log.warn({ reason: routed.unavailable }, 'cannot route a Lago webhook: its organization\'s Lago cannot be asked')
      return await reply.code(503).send(errorBody(503, 'lago_unavailable', 'The organization of this webhook cannot be identified right now: retry later'))
    }
    const { organization } = routed
    // Its keys (a stored key that cannot be read is our fault: a 5xx, and Lago retries).
    const verifier = await fastify.lagoWebhooks.verifierFor(organization)
    let algo: string
    try {
      algo = await verifier.verify(header(request.headers['x-lago-signature-algorithm']), header(request.headers['x-lago-signature']), raw)
    } catch (err) {
      if (err instanceof PublicKeyUnavailableError) {
        request.log.warn({ err, organization }, 'cannot verify a jwt-signed Lago webhook: Lago\'s public key is unavailable')
        return await reply.code(503).send(errorBody(503, 'lago_unavailable', 'Lago\'s webhook public key cannot be fetched right now: retry later'))
      }
      fastify.lagoWebhooks.refused(err instanceof WebhookSignatureError ? err.reason : 'signature does not verify')
      return await reply.code(401).send(UNAUTHORIZED)
    }
    if (!parsed) return await reply.code(400).send(errorBody(400, 'invalid_json', 'The webhook body is not JSON'))
    if (envelope === null || typeof envelope.webhook_type !== 'string' || typeof envelope.object_type !== 'string') {
      return await reply.code(400).send(errorBody(400, 'invalid_webhook', 'A Lago webhook is an object with webhook_type and object_type'))
    }
    if (routed.adopt === true && lagoOrganizationId !== null) await fastify.lagoWebhooks.adopt(organization, lagoOrganizationId)
    const uniqueKey = header(request.headers['x-lago-unique-key'])
    if (uniqueKey === undefined || uniqueKey === '' || uniqueKey.length > 255) {
      return await reply.code(400).send(errorBody(400, 'missing_unique_key', 'X-Lago-Unique-Key is required (Lago sends it with every delivery)'))
    }
    const stored = await fastify.lagoWebhooks.store({
      organization,
      uniqueKey,
      webhookType: envelope.webhook_type,
      objectType: envelope.object_type,
      lagoOrganizationId,
      signatureAlgo: algo,
      body: envelope
    })
    return { status: stored.duplicate ? 'duplicate' as const : 'stored' as const, id: stored.id }
  })
}

export default plugin
