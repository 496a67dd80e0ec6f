import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { AdminRequiredError, OrganizationNotFoundError, OtherOrganizationForbiddenError, UnauthorizedError } from '../../schemas/errors.js'
import { DEFAULT_ORGANIZATION_ID } from '../../db/database.js'
import { bearerToken, matchingDigest, sha256 } from './webhook-auth.js'

/** Who a request authenticated as: never the key itself. */
export interface ApiKeyIdentity {
  /** Stable and not secret: rate limits are counted per id. */
  id: string
  /** api_keys (API_KEYS), lago_api_key (LAGO_API_KEY), or the name given to a stored key. */
  name: string
  source: 'config' | 'stored'
  /** The organization the key belongs to (API_KEYS and LAGO_API_KEY: default); an admin key's is the one it names. */
  organizationId: string
  /** An ADMIN_API_KEYS key: manages organizations, acts on any organization named by X-Organization-Id. */
  admin: boolean
}

/** The header with which an admin key names the organization it acts on (default when absent). */
export const ORGANIZATION_HEADER = 'x-organization-id'

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
    /** onRequest/preHandler after requireApiKey: refuses (403 admin_required) a key that is not an admin key. */
    requireAdmin: (request: FastifyRequest) => Promise<void>
  }
  interface FastifyRequest {
    apiKey?: ApiKeyIdentity
  }
}

const MESSAGE = 'Missing or invalid API key: send Authorization: Bearer <key>'

export default fp(async function auth (fastify) {
  const { config, apiKeys, organizations } = fastify
  const configured = [
    ...config.ADMIN_API_KEYS.map((k) => ({ digest: sha256(k), name: 'admin_api_keys', admin: true })),
    ...config.API_KEYS.map((k) => ({ digest: sha256(k), name: 'api_keys', admin: false })),
    ...(config.LAGO_API_KEY !== undefined ? [{ digest: sha256(config.LAGO_API_KEY), name: 'lago_api_key', admin: false }] : [])
  ].map(({ digest, name, admin }): { digest: Buffer, identity: ApiKeyIdentity } =>
    ({ digest, identity: { id: `config:${digest.subarray(0, 8).toString('hex')}`, name, source: 'config', organizationId: DEFAULT_ORGANIZATION_ID, admin } }))
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
      if (stored !== null) identity = { id: `stored:${stored.id}`, name: stored.name, source: 'stored', organizationId: stored.organizationId, admin: false }
    }
    if (token === '' || identity === null) throw new UnauthorizedError(MESSAGE)
    const named = request.headers[ORGANIZATION_HEADER]
    const id = (Array.isArray(named) ? named[0] : named)?.trim() ?? ''
    if (identity.admin) {
      // An admin key acts on the organization it names; an unknown one is a 404 like any unknown resource.
      if (id !== '') {
        if (await organizations.get(id) === null) throw new OrganizationNotFoundError(id)
        identity = { ...identity, organizationId: id }
      }
    } else if ((await organizations.get(identity.organizationId))?.status !== 'active') {
      // A disabled organization's keys stop working; the answer is the same as for a wrong key.
      throw new UnauthorizedError(MESSAGE)
    } else if (id !== '' && id !== identity.organizationId) {
      // Refused rather than ignored: a write meant for another organization must not land in the key's own.
      throw new OtherOrganizationForbiddenError(identity.organizationId)
    }
    request.apiKey = identity
    request.organizationId = identity.organizationId
  })

  fastify.decorate('requireAdmin', async (request: FastifyRequest) => {
    if (request.apiKey?.admin !== true) throw new AdminRequiredError()
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
}, { name: 'auth', dependencies: ['config', 'api-keys', 'rate-limit', 'organizations'] })
