import { createHmac, createPublicKey, type KeyObject } from 'node:crypto'
import type * as Jose from 'jose'
import { matchingDigest, sha256 } from '../webhook-auth.js'

/** Why a delivery was refused (logged; the caller only ever learns "401"). */
export class WebhookSignatureError extends Error {
  constructor (readonly reason: string) {
    super(reason)
    this.name = 'WebhookSignatureError'
  }
}

/** Lago's public key could not be fetched: a deliberate 503, so that Lago retries the delivery later. */
export class PublicKeyUnavailableError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'PublicKeyUnavailableError'
  }
}

export type SignatureAlgo = 'jwt' | 'hmac'

export interface VerifierOptions {
  /** The organization's HMAC keys: the current one first, then one still accepted during a rotation. */
  hmacKeys: string[]
  /** Accepted `iss` claims of JWT signatures (Lago's LAGO_API_URL). */
  issuers: string[]
  /** Lago's GET /api/v1/webhooks/json_public_key: base64 of the PEM. */
  fetchPublicKey: () => Promise<string>
  /** A failed JWT refetches the key at most this often, so that forgeries cannot make us hammer Lago. */
  refetchIntervalMs?: number
  now?: () => number
}

/** The key Lago publishes: base64 of a PEM (SPKI or PKCS#1), or of bare DER. */
export function parsePublicKey (published: string): KeyObject {
  const decoded = Buffer.from(published.replace(/\s+/g, ''), 'base64')
  const text = decoded.toString('utf8')
  if (text.includes('-----BEGIN')) return createPublicKey(text)
  try {
    return createPublicKey({ key: decoded, format: 'der', type: 'spki' })
  } catch {
    return createPublicKey({ key: decoded, format: 'der', type: 'pkcs1' })
  }
}

/** base64(HMAC-SHA256(key, body)), as Lago signs hmac webhooks. */
export const hmacSignature = (key: string, body: Buffer | string): string => createHmac('sha256', key).update(body).digest('base64')

const trimSlash = (url: string): string => url.replace(/\/+$/, '')

/** jose, loaded by the first JWT to verify: its 46 modules are not loaded while the service starts. */
let jose: Promise<typeof Jose> | undefined
const loadJose = async (): Promise<typeof Jose> => await (jose ??= import('jose'))

/**
 * Verifies Lago webhook signatures on the exact bytes received:
 * - hmac: base64 HMAC-SHA256 of the body with any configured key, compared in constant time;
 * - jwt: an RS256 JWT (jose; no other algorithm, so `alg: none` and HS256 tricks fail) from Lago's key, whose
 *   `iss` is Lago's URL and whose `data` claim is exactly the body. The key is cached; a signature that does not
 *   verify fetches it once more (rate limited) so that a rotated key works without a restart.
 */
export class LagoWebhookVerifier {
  readonly #o: VerifierOptions
  readonly #hmacKeys: string[]
  readonly #issuers: Set<string>
  #key: Promise<KeyObject> | null = null
  /** When a failed signature last refetched the key (the first refetch is never delayed). */
  #lastRefetchAt = Number.NEGATIVE_INFINITY

  constructor (options: VerifierOptions) {
    this.#o = options
    this.#hmacKeys = options.hmacKeys.filter((k) => k !== '')
    this.#issuers = new Set(options.issuers.map(trimSlash))
  }

  get acceptsHmac (): boolean {
    return this.#hmacKeys.length > 0
  }

  /** Resolves when the signature is valid; throws WebhookSignatureError (401) or PublicKeyUnavailableError (503). */
  async verify (algo: string | undefined, signature: string | undefined, body: Buffer): Promise<SignatureAlgo> {
    if (signature === undefined || signature === '') throw new WebhookSignatureError('no X-Lago-Signature')
    if (algo === 'hmac') {
      this.#verifyHmac(signature, body)
      return 'hmac'
    }
    if (algo === 'jwt') {
      await this.#verifyJwt(signature, body)
      return 'jwt'
    }
    throw new WebhookSignatureError('X-Lago-Signature-Algorithm is neither jwt nor hmac')
  }

  #verifyHmac (signature: string, body: Buffer): void {
    if (!this.acceptsHmac) throw new WebhookSignatureError('hmac signature, but LAGO_WEBHOOK_HMAC_KEY is not set')
    const expected = this.#hmacKeys.map((key) => sha256(hmacSignature(key, body)))
    if (matchingDigest(sha256(signature), expected) < 0) throw new WebhookSignatureError('hmac signature does not match')
  }

  async #verifyJwt (token: string, body: Buffer): Promise<void> {
    const { errors } = await loadJose()
    const key = await this.#publicKey(false)
    try {
      await this.#checkJwt(token, key, body)
    } catch (err) {
      // Only a signature that fails to verify can be a rotated key; a wrong iss or data is not.
      if (!(err instanceof errors.JWSSignatureVerificationFailed)) throw err
      const now = (this.#o.now ?? Date.now)()
      if (now - this.#lastRefetchAt < (this.#o.refetchIntervalMs ?? 30_000)) throw new WebhookSignatureError('jwt signature does not verify')
      this.#lastRefetchAt = now
      const fresh = await this.#publicKey(true)
      await this.#checkJwt(token, fresh, body)
    }
  }

  async #checkJwt (token: string, key: KeyObject, body: Buffer): Promise<void> {
    const { errors, jwtVerify } = await loadJose()
    let payload: Record<string, unknown>
    try {
      ({ payload } = await jwtVerify(token, key, { algorithms: ['RS256'] }))
    } catch (err) {
      if (err instanceof errors.JWSSignatureVerificationFailed) throw err
      throw new WebhookSignatureError(`jwt refused: ${err instanceof Error ? err.message : String(err)}`)
    }
    if (typeof payload.iss !== 'string' || !this.#issuers.has(trimSlash(payload.iss))) throw new WebhookSignatureError('jwt iss is not Lago\'s URL')
    // The signed data must be these very bytes: compare as bytes, so that no re-encoding can differ.
    if (typeof payload.data !== 'string' || !Buffer.from(payload.data, 'utf8').equals(body)) throw new WebhookSignatureError('jwt data is not the body')
  }

  async #publicKey (refresh: boolean): Promise<KeyObject> {
    if (this.#key === null || refresh) {
      const fetching = (async () => {
        try {
          return parsePublicKey(await this.#o.fetchPublicKey())
        } catch (err) {
          throw new PublicKeyUnavailableError(`could not fetch Lago's webhook public key: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
        }
      })()
      this.#key = fetching
      // A failed fetch is not cached: the next delivery tries again.
      fetching.catch(() => { if (this.#key === fetching) this.#key = null })
    }
    return await this.#key
  }
}
