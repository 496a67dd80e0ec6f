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

/** Constant-time membership: hashing first makes every comparison the same length. */
export function tokenMatches (candidate: string, allowedDigests: Buffer[]): boolean {
  const digest = sha256(candidate)
  let found = false
  for (const allowed of allowedDigests) found = timingSafeEqual(digest, allowed) || found
  return found
}

/**
 * Standard Webhooks (standardwebhooks.com): HMAC-SHA256 over `${id}.${timestamp}.${body}` with the base64 key
 * after "whsec_", sent as space-separated "v1,<base64>" signatures. Written on node:crypto rather than the
 * `standardwebhooks` package, whose pure-JS SHA-256 would cost throughput on every event.
 */
export function verifyStandardWebhook (
  secret: string,
  headers: { id?: string, timestamp?: string, signature?: string },
  body: string,
  toleranceSeconds: number,
  nowSeconds = Math.floor(Date.now() / 1000)
): string | null {
  const { id, timestamp, signature } = headers
  if (id === undefined || timestamp === undefined || signature === undefined) return 'missing webhook-id, webhook-timestamp or webhook-signature header'
  if (!/^\d+$/.test(timestamp)) return 'webhook-timestamp is not Unix seconds'
  if (Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) return 'webhook-timestamp is too old or in the future'
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64')
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
  const open = tokens.length === 0 && secret === undefined

  if (open) {
    fastify.log.warn('WEBHOOK_SECRET and WEBHOOK_TOKENS are both unset: anyone who can reach this service can post ' +
      'usage events. Set one of them before exposing the service.')
  }

  const accepted = [tokens.length > 0 ? 'Authorization: Bearer <token>' : null, secret !== undefined ? 'a Standard Webhooks signature' : null]
    .filter(Boolean).join(' or ')

  fastify.decorate('verifyWebhook', (request: FastifyRequest) => {
    if (open) return
    const authorization = header(request, 'authorization')
    if (tokens.length > 0 && authorization?.startsWith('Bearer ') === true && tokenMatches(authorization.slice(7).trim(), tokens)) return
    if (secret !== undefined && header(request, 'webhook-signature') !== undefined) {
      const problem = verifyStandardWebhook(secret, {
        id: header(request, 'webhook-id'),
        timestamp: header(request, 'webhook-timestamp'),
        signature: header(request, 'webhook-signature')
      }, request.rawBody ?? '', config.WEBHOOK_SIGNATURE_TOLERANCE_SECONDS)
      if (problem === null) return
      throw new UnauthorizedError(`Invalid webhook signature: ${problem}`)
    }
    throw new UnauthorizedError(`Missing or invalid webhook credentials: send ${accepted}`)
  })
}, { name: 'webhook-auth', dependencies: ['config'] })
