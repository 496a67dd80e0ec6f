import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { UnauthorizedError } from '../../schemas/errors.js'

/** Organizations' ingestion tokens start with this, so that a leaked one is recognisable. */
export const INGESTION_TOKEN_PREFIX = 'lit_'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * onRequest, before the body is read: accepts a valid webhook token, or signature headers that are present
     * and well-formed (the signature itself covers the body: see verifyWebhookSignature). Throws
     * UnauthorizedError otherwise, so an unauthenticated caller never makes the service read its body.
     */
    authenticateWebhook: (request: FastifyRequest) => void
    /**
     * preValidation, once the raw body exists: checks the signature that authenticateWebhook let through against
     * every organization's Standard Webhooks secret (default's: WEBHOOK_SECRET) and routes the request to the one
     * whose secret made it. Throws UnauthorizedError when none did, or the organization is disabled.
     */
    verifyWebhookSignature: (request: FastifyRequest) => void
  }
  interface FastifyRequest {
    /**
     * The organization the request acts for: decided by its credential (an organization's ingestion token or API
     * key, or the organization whose webhook secret signed it; WEBHOOK_TOKENS, WEBHOOK_SECRET and API_KEYS mean default), or named by an admin key. Default: default.
     */
    organizationId: string
    /** Set by authenticateWebhook: the request still has to prove its Standard Webhooks signature. */
    webhookSignaturePending?: boolean
  }
}

export const sha256 = (value: string | Buffer): Buffer => createHash('sha256').update(value).digest()

/** The token of an `Authorization: Bearer <token>` header; '' when there is none. */
export function bearerToken (header: string | undefined): string {
  return typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : ''
}

/**
 * Index of the first of allowedDigests equal to digest, or -1. Compares with every one of them, without early
 * exit, so the time taken does not tell which (or whether one) matched.
 */
export function matchingDigest (digest: Buffer, allowedDigests: Buffer[]): number {
  let index = -1
  for (const [i, allowed] of allowedDigests.entries()) {
    if (timingSafeEqual(digest, allowed) && index < 0) index = i
  }
  return index
}

/** The HMAC key of a Standard Webhooks secret: the base64 after "whsec_". */
export function standardWebhookKey (secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64')
}

export interface SignatureHeaders { id: string, timestamp: string, signature: string }

/**
 * What is wrong with a request's Standard Webhooks headers, judged without the body: all three present, an id of
 * sane length, a timestamp in Unix seconds within the tolerance, at least one "v1,<base64>" signature. null when
 * they are fine.
 */
export function signatureHeadersProblem (
  headers: { id?: string, timestamp?: string, signature?: string },
  toleranceSeconds: number,
  nowSeconds = Math.floor(Date.now() / 1000)
): string | null {
  const { id, timestamp, signature } = headers
  if (id === undefined || timestamp === undefined || signature === undefined) return 'missing webhook-id, webhook-timestamp or webhook-signature header'
  if (id === '' || id.length > 256) return 'webhook-id must be 1 to 256 characters'
  if (!/^\d{1,12}$/.test(timestamp)) return 'webhook-timestamp is not Unix seconds'
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return 'webhook-timestamp is too old or in the future'
  if (!signature.split(' ').some((part) => /^v1,[A-Za-z0-9+/]+={0,2}$/.test(part))) return 'webhook-signature has no v1 signature'
  return null
}

/**
 * Standard Webhooks (standardwebhooks.com): HMAC-SHA256 over `${id}.${timestamp}.${body}` with the base64 key
 * after "whsec_" (key: standardWebhookKey(secret)), sent as space-separated "v1,<base64>" signatures. Written on
 * node:crypto rather than the `standardwebhooks` package, whose pure-JS SHA-256 would cost throughput on every
 * event. The headers were checked by signatureHeadersProblem before the body was read.
 */
function signatureMatches (key: Buffer, { id, timestamp, signature }: SignatureHeaders, body: string): boolean {
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest()
  let matched = false
  for (const part of signature.split(' ')) {
    const [version, value] = part.split(',', 2)
    if (version !== 'v1' || value === undefined) continue
    const given = Buffer.from(value, 'base64')
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true
  }
  return matched
}

/** A Standard Webhooks key an ingestion request may be signed with, and the organization it routes to. */
export interface SigningKey { organizationId: string, key: Buffer, active: boolean }

/**
 * The signing keys whose signature the request carries (normally one; several only when organizations share a
 * secret). Computes every HMAC, without early exit.
 */
export function matchingSigningKeys (keys: SigningKey[], headers: SignatureHeaders, body: string): SigningKey[] {
  return keys.filter((k) => signatureMatches(k.key, headers, body))
}

const header = (request: FastifyRequest, name: string): string | undefined => {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

export default fp(async function webhookAuth (fastify) {
  const { config, organizations } = fastify
  const tokens = config.WEBHOOK_TOKENS.map((t) => sha256(t))
  const secret = config.WEBHOOK_SECRET
  const open = tokens.length === 0 && secret === undefined

  if (open) {
    fastify.log.warn('WEBHOOK_SECRET and WEBHOOK_TOKENS are both unset: anyone who can reach this service can post ' +
      'usage events. Set one of them before exposing the service.')
  }

  // Every organization's Standard Webhooks key (default's: WEBHOOK_SECRET unless one is stored for it), decoded once
  // and kept in memory: verifying runs on every signed request. Rebuilt for an organization when it changes.
  const signingKeys = new Map<string, SigningKey>()
  const loadSigningKey = async (id: string): Promise<void> => {
    const organization = await organizations.get(id)
    const stored = organization !== null ? await organizations.webhookSecret(id) : undefined
    if (organization === null || stored === undefined) signingKeys.delete(id)
    else signingKeys.set(id, { organizationId: id, key: standardWebhookKey(stored), active: organization.status === 'active' })
  }
  const loadOrForget = async (id: string): Promise<void> => {
    try {
      await loadSigningKey(id)
    } catch (err) {
      // Unreadable (ORGANIZATION_SECRETS_KEY missing or wrong): its signed requests are refused, never misrouted.
      signingKeys.delete(id)
      fastify.log.error({ err, organization: id }, 'organization webhook secret cannot be read: its signed ingestion requests are refused')
    }
  }
  for (const organization of await organizations.list()) await loadOrForget(organization.id)
  const onChanged = (id: string): void => { void loadOrForget(id) }
  organizations.on('changed', onChanged)
  fastify.addHook('onClose', async () => { organizations.off('changed', onChanged) })

  const accepted = (): string => [
    tokens.length > 0 ? 'Authorization: Bearer <token>' : null,
    signingKeys.size > 0 ? 'a Standard Webhooks signature' : null
  ].filter(Boolean).join(' or ')

  const signatureHeaders = (request: FastifyRequest) => ({
    id: header(request, 'webhook-id'),
    timestamp: header(request, 'webhook-timestamp'),
    signature: header(request, 'webhook-signature')
  })

  fastify.decorate('authenticateWebhook', (request: FastifyRequest) => {
    const token = bearerToken(header(request, 'authorization'))
    // An organization's own ingestion token routes the request to it (from memory: no query before the body).
    const organization = token !== '' ? organizations.ingestionTokenOrganization(token) : null
    if (organization !== null) {
      // Refused even when the webhooks are open: falling through would store its events under another organization.
      if (organization.revoked) throw new UnauthorizedError('This ingestion token was revoked: use one of the organization\'s live tokens')
      if (!organization.active) throw new UnauthorizedError(`Organization ${organization.id} is disabled: its ingestion tokens are refused`)
      request.organizationId = organization.id
      return
    }
    if (tokens.length > 0 && token !== '' && matchingDigest(sha256(token), tokens) >= 0) return
    // An ingestion token of no organization (mistyped, or its organization deleted) is refused, even where ingestion
    // is open: its caller means an organization, and storing under default would bill the wrong one.
    if (token.startsWith(INGESTION_TOKEN_PREFIX)) throw new UnauthorizedError('Unknown ingestion token: it belongs to no organization')
    // A signed request: the headers are judged now, the signature (which organization's key made it) on the raw body.
    if (signingKeys.size > 0 && header(request, 'webhook-signature') !== undefined) {
      const problem = signatureHeadersProblem(signatureHeaders(request), config.WEBHOOK_SIGNATURE_TOLERANCE_SECONDS)
      if (problem !== null) {
        if (open) return
        throw new UnauthorizedError(`Invalid webhook signature: ${problem}`)
      }
      request.webhookSignaturePending = true
      return
    }
    if (open) return
    throw new UnauthorizedError(`Missing or invalid webhook credentials: send ${accepted()}`)
  })

  fastify.decorate('verifyWebhookSignature', (request: FastifyRequest) => {
    if (request.webhookSignaturePending !== true) return
    const matches = matchingSigningKeys([...signingKeys.values()], signatureHeaders(request) as SignatureHeaders, request.rawBody ?? '')
    if (matches.length === 0) {
      // Open ingestion accepts unsigned requests into default: one whose signature matches nobody is no worse.
      if (open) { request.webhookSignaturePending = false; return }
      throw new UnauthorizedError('Invalid webhook signature: webhook-signature does not match')
    }
    // Two organizations sharing a secret: storing under either could be wrong, so neither.
    if (matches.length > 1) {
      throw new UnauthorizedError(`Invalid webhook signature: it matches the secrets of several organizations (${matches.map((m) => m.organizationId).join(', ')}); give each its own`)
    }
    const [match] = matches as [SigningKey]
    if (!match.active) throw new UnauthorizedError(`Organization ${match.organizationId} is disabled: its webhook secret is refused`)
    request.organizationId = match.organizationId
    request.webhookSignaturePending = false
  })
}, { name: 'webhook-auth', dependencies: ['config', 'organizations'] })
