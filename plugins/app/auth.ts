import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { listOf } from '../external/config.js'
import { UnauthorizedError } from '../../schemas/errors.js'
import { bearerToken, matchingDigest, sha256 } from './webhook-auth.js'

/** Who a request authenticated as: never the key itself. */
export interface ApiKeyIdentity {
  /** Stable and not secret: rate limits are counted per id. */
  id: string
  /** api_keys (API_KEYS), lago_api_key (LAGO_API_KEY), or the name given to a stored key. */
  name: string
  source: 'config' | 'stored'
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * preHandler/onRequest for the API and admin routes: a Bearer key from API_KEYS, LAGO_API_KEY or the stored
     * keys (`npm run keys`). Throws UnauthorizedError otherwise.
     */
    authenticate: (request: FastifyRequest) => Promise<void>
    /**
     * onRequest hook of the routes that need an API key: authenticate, and count a refused request against the
     * caller's IP rate limit (guessing keys is rate limited too). Runs before the body is read or validated.
     */
    requireApiKey: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
  interface FastifyRequest {
    apiKey?: ApiKeyIdentity
  }
}

const MESSAGE = 'Missing or invalid API key: send Authorization: Bearer <key>'

export default fp(async function auth (fastify) {
  const { config, apiKeys } = fastify
  const configured = [
    ...listOf(config.API_KEYS).map((k) => ({ digest: sha256(k), name: 'api_keys' })),
    ...(config.LAGO_API_KEY !== undefined ? [{ digest: sha256(config.LAGO_API_KEY), name: 'lago_api_key' }] : [])
  ].map(({ digest, name }): { digest: Buffer, identity: ApiKeyIdentity } =>
    ({ digest, identity: { id: `config:${digest.subarray(0, 8).toString('hex')}`, name, source: 'config' } }))
  const configuredDigests = configured.map((k) => k.digest)
  if (configured.length === 0) {
    fastify.log.info('API_KEYS and LAGO_API_KEY are both unset: the API and the admin webhooks accept only keys created with `npm run keys -- create <name>`')
  }

  // One path for every key. A missing and a wrong key do the same work (hash, compare with every configured
  // key, look the digest up among the stored keys) and get the same answer.
  fastify.decorate('authenticate', async (request: FastifyRequest) => {
    const token = bearerToken(request.headers.authorization)
    const digest = sha256(token)
    const match = matchingDigest(digest, configuredDigests)
    let identity: ApiKeyIdentity | null = match >= 0 ? configured[match].identity : null
    if (identity === null) {
      const stored = await apiKeys.findLive(digest)
      if (stored !== null) identity = { id: `stored:${stored.id}`, name: stored.name, source: 'stored' }
    }
    if (token === '' || identity === null) throw new UnauthorizedError(MESSAGE)
    request.apiKey = identity
  })

  const limitByIp = fastify.rateLimit()
  fastify.decorate('requireApiKey', async (request: FastifyRequest, reply: FastifyReply) => {
    try {
      await fastify.authenticate(request)
    } catch (err) {
      await limitByIp.call(fastify, request, reply)
      throw err
    }
  })
}, { name: 'auth', dependencies: ['config', 'api-keys', 'rate-limit'] })
