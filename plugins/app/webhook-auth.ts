import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { listOf } from '../external/config.js'
import { UnauthorizedError } from '../../schemas/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Throws UnauthorizedError unless the request carries a valid webhook token or signature. */
    verifyWebhook: (request: FastifyRequest) => void
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

/** Constant-time membership: hashing first makes every comparison the same length. */
export function tokenMatches (candidate: string, allowedDigests: Buffer[]): boolean {
  return matchingDigest(sha256(candidate), allowedDigests) >= 0
}

/** The HMAC key of a Standard Webhooks secret: the base64 after "whsec_". */
export function standardWebhookKey (secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64')
}

/**
 * Standard Webhooks (standardwebhooks.com): HMAC-SHA256 over `${id}.${timestamp}.${body}` with the base64 key
 * after "whsec_" (key: standardWebhookKey(secret)), sent as space-separated "v1,<base64>" signatures. Written on
 * node:crypto rather than the `standardwebhooks` package, whose pure-JS SHA-256 would cost throughput on every event.
 */
export function verifyStandardWebhook (
  key: Buffer,
  headers: { id?: string, timestamp?: string, signature?: string },
  body: string,
  toleranceSeconds: number,
  nowSeconds = Math.floor(Date.now() / 1000)
): string | null {
  const { id, timestamp, signature } = headers
  if (id === undefined || timestamp === undefined || signature === undefined) return 'missing webhook-id, webhook-timestamp or webhook-signature header'
  if (!/^\d+$/.test(timestamp)) return 'webhook-timestamp is not Unix seconds'
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return 'webhook-timestamp is too old or in the future'
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest()
  for (const part of signature.split(' ')) {
    const [version, value] = part.split(',', 2)
    if (version !== 'v1' || value === undefined) continue
    const given = Buffer.from(value, 'base64')
    if (given.length === expected.length && timingSafeEqual(given, expected)) return null
  }
  return 'webhook-signature does not match'
}

const header = (request: FastifyRequest, name: string): string | undefined => {
  const value = request.headers[name]
  return Array.isArray(value) ? value[0] : value
}

export default fp(async function webhookAuth (fastify) {
  const { config } = fastify
  const tokens = listOf(config.WEBHOOK_TOKENS).map((t) => sha256(t))
  const secret = config.WEBHOOK_SECRET
  // Decoded once, not per request.
  const key = secret !== undefined ? standardWebhookKey(secret) : undefined
  const open = tokens.length === 0 && secret === undefined

  if (open) {
    fastify.log.warn('WEBHOOK_SECRET and WEBHOOK_TOKENS are both unset: anyone who can reach this service can post ' +
      'usage events. Set one of them before exposing the service.')
  }

  const accepted = [tokens.length > 0 ? 'Authorization: Bearer <token>' : null, secret !== undefined ? 'a Standard Webhooks signature' : null]
    .filter(Boolean).join(' or ')

  fastify.decorate('verifyWebhook', (request: FastifyRequest) => {
    if (open) return
    const token = bearerToken(header(request, 'authorization'))
    if (tokens.length > 0 && token !== '' && tokenMatches(token, tokens)) return
    const signature = header(request, 'webhook-signature')
    if (key !== undefined && signature !== undefined) {
      const problem = verifyStandardWebhook(key, {
        id: header(request, 'webhook-id'),
        timestamp: header(request, 'webhook-timestamp'),
        signature
      }, request.rawBody ?? '', config.WEBHOOK_SIGNATURE_TOLERANCE_SECONDS)
      if (problem === null) return
      throw new UnauthorizedError(`Invalid webhook signature: ${problem}`)
    }
    throw new UnauthorizedError(`Missing or invalid webhook credentials: send ${accepted}`)
  })
}, { name: 'webhook-auth', dependencies: ['config'] })
