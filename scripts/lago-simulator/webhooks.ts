import { createHmac, generateKeyPair, randomUUID, type KeyObject } from 'node:crypto'
import { promisify } from 'node:util'
import { SignJWT } from 'jose'
import { request } from 'undici'
import { Errors, notFound, validationFailure } from './errors.js'
import { isObject, isoSeconds, paginate, strOrNull, type Query } from './util.js'

// Lago's outgoing webhooks (app/services/webhooks/*): an envelope {webhook_type, object_type, organization_id,
// <object_type>: object}, POSTed to every endpoint subscribed to the type, signed with the endpoint's algorithm
// (jwt: RS256 over {data: body, iss: LAGO_API_URL}; hmac: base64 HMAC-SHA256 of the body with the organization's
// key), X-Lago-Unique-Key constant across retries, 3 attempts in all, success only on 200/201/202/204.

export interface WebhookEndpointRecord {
  lago_id: string
  lago_organization_id: string
  webhook_url: string
  signature_algo: 'jwt' | 'hmac'
  name: string | null
  event_types: string[] | null
  created_at: string
}

export interface DeliveryRecord {
  unique_key: string
  webhook_type: string
  webhook_url: string
  signature_algo: 'jwt' | 'hmac'
  status: 'pending' | 'retrying' | 'succeeded' | 'failed'
  attempts: Array<{ at: string, http_status: number | null, error: string | null }>
}

export interface WebhookSenderOptions {
  /** The organization's HMAC key (Lago shows it in its UI only). Default: a random UUID. */
  hmacKey?: string
  /** iss of jwt signatures (Lago's LAGO_API_URL); default: the simulator's own URL once it listens. */
  issuer?: string
  /** Waits before the 2nd and 3rd attempts. Lago: about 3 s and 18 s (retries^4 + 2 s, plus jitter). */
  retryDelaysMs?: number[]
  /** One attempt's timeout (LAGO_WEBHOOK_TIMEOUT_SECONDS, 30 s). */
  timeoutMs?: number
}

const SUCCESS = new Set([200, 201, 202, 204])
const MAX_ENDPOINTS = 10

interface SigningKeys { privateKey: KeyObject, publicKeyPem: string }

/** An RSA key pair for jwt signatures, made on libuv's thread pool. */
async function newSigningKeys (): Promise<SigningKeys> {
  const { privateKey, publicKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 })
  return { privateKey, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() }
}

export class WebhookSender {
  readonly organizationId = randomUUID()
  hmacKey: string
  issuer: string | null
  retryDelaysMs: number[]
  timeoutMs: number
  endpoints: WebhookEndpointRecord[] = []
  deliveries: DeliveryRecord[] = []
  // Made on first use: an RSA key pair costs 40-500 ms of CPU, and most simulators never sign a webhook. Made off
  // the event loop: the simulator shares its process with the service under test, whose calls it would stall.
  #keys: Promise<SigningKeys> | null = null
  #inFlight = new Set<Promise<void>>()
  #closed = false

  constructor (options: WebhookSenderOptions = {}) {
    this.hmacKey = options.hmacKey ?? randomUUID()
    this.issuer = options.issuer ?? null
    this.retryDelaysMs = options.retryDelaysMs ?? [3000, 18_000]
    this.timeoutMs = options.timeoutMs ?? 30_000
  }

  /** A new RSA key pair (LAGO_RSA_PRIVATE_KEY changed): later jwt signatures need the new public key. */
  async rotateKey (): Promise<void> {
    await this.#newKeys()
  }

  async #signingKeys (): Promise<SigningKeys> {
    return await (this.#keys ?? this.#newKeys())
  }

  #newKeys (): Promise<SigningKeys> {
    const keys = newSigningKeys()
    this.#keys = keys
    // A failed generation is not kept: the next use tries again.
    keys.catch(() => { if (this.#keys === keys) this.#keys = null })
    return keys
  }

  /** GET /webhooks/json_public_key: the PEM, base64-encoded. */
  async publicKey (): Promise<{ webhook: { public_key: string } }> {
    return { webhook: { public_key: Buffer.from((await this.#signingKeys()).publicKeyPem).toString('base64') } }
  }

  /** GET /webhooks/public_key (deprecated): the same, as text/plain with MIME line breaks. */
  async publicKeyText (): Promise<string> {
    return (Buffer.from((await this.#signingKeys()).publicKeyPem).toString('base64').match(/.{1,60}/g) ?? []).join('\n') + '\n'
  }

  // ---- endpoints (POST/GET/PUT/DELETE /webhook_endpoints) ------------------------------------------------

  #input (body: unknown): { url: string, algo: 'jwt' | 'hmac', name: string | null, types: string[] | null } {
    const input = isObject(body) && isObject(body.webhook_endpoint) ? body.webhook_endpoint : {}
    const errors = new Errors()
    const url = strOrNull(input.webhook_url)
    if (url === null || url === '') errors.add('webhook_url', 'value_is_mandatory')
    else if (!/^https?:\/\/\S+$/.test(url)) errors.add('webhook_url', 'url_is_invalid')
    const algo = input.signature_algo ?? 'jwt'
    if (algo !== 'jwt' && algo !== 'hmac') errors.add('signature_algo', 'value_is_invalid')
    errors.throwIfAny()
    const types = Array.isArray(input.event_types) ? input.event_types.map(String) : null
    return { url: url as string, algo: algo as 'jwt' | 'hmac', name: strOrNull(input.name), types }
  }

  createEndpoint (body: unknown): { webhook_endpoint: WebhookEndpointRecord } {
    const { url, algo, name, types } = this.#input(body)
    if (this.endpoints.some((e) => e.webhook_url === url)) throw validationFailure({ webhook_url: ['value_already_exist'] })
    if (this.endpoints.length >= MAX_ENDPOINTS) throw validationFailure({ base: ['exceeded_limit'] })
    const endpoint: WebhookEndpointRecord = {
      lago_id: randomUUID(), lago_organization_id: this.organizationId, webhook_url: url, signature_algo: algo, name, event_types: types, created_at: isoSeconds()
    }
    this.endpoints.push(endpoint)
    return { webhook_endpoint: endpoint }
  }

  listEndpoints (query: Query): { webhook_endpoints: WebhookEndpointRecord[], meta: ReturnType<typeof paginate>['meta'] } {
    const { items, meta } = paginate(this.endpoints, query)
    return { webhook_endpoints: items, meta }
  }

  #endpoint (lagoId: string): WebhookEndpointRecord {
    const endpoint = this.endpoints.find((e) => e.lago_id === lagoId)
    if (endpoint === undefined) throw notFound('webhook_endpoint')
    return endpoint
  }

  getEndpoint (lagoId: string): { webhook_endpoint: WebhookEndpointRecord } {
    return { webhook_endpoint: this.#endpoint(lagoId) }
  }

  updateEndpoint (lagoId: string, body: unknown): { webhook_endpoint: WebhookEndpointRecord } {
    const endpoint = this.#endpoint(lagoId)
    const { url, algo, name, types } = this.#input(body)
    if (this.endpoints.some((e) => e !== endpoint && e.webhook_url === url)) throw validationFailure({ webhook_url: ['value_already_exist'] })
    Object.assign(endpoint, { webhook_url: url, signature_algo: algo, name, event_types: types })
    return { webhook_endpoint: endpoint }
  }

  deleteEndpoint (lagoId: string): { webhook_endpoint: WebhookEndpointRecord } {
    const endpoint = this.#endpoint(lagoId)
    this.endpoints = this.endpoints.filter((e) => e !== endpoint)
    return { webhook_endpoint: endpoint }
  }

  // ---- delivery ------------------------------------------------------------------------------------------

  /** Sends a webhook to every endpoint subscribed to its type, in the background. */
  emit (webhookType: string, objectType: string, object: unknown): void {
    if (this.#closed) return
    const body = JSON.stringify({ webhook_type: webhookType, object_type: objectType, organization_id: this.organizationId, [objectType]: object })
    for (const endpoint of this.endpoints) {
      if (endpoint.event_types !== null && !endpoint.event_types.includes(webhookType)) continue
      const delivery: DeliveryRecord = { unique_key: randomUUID(), webhook_type: webhookType, webhook_url: endpoint.webhook_url, signature_algo: endpoint.signature_algo, status: 'pending', attempts: [] }
      this.deliveries.push(delivery)
      const run = this.#deliver(delivery, body).finally(() => this.#inFlight.delete(run))
      this.#inFlight.add(run)
    }
  }

  /** The headers of one delivery (also for tests that forge or replay deliveries). */
  async sign (algo: 'jwt' | 'hmac', body: string): Promise<string> {
    if (algo === 'hmac') return createHmac('sha256', this.hmacKey).update(body).digest('base64')
    return await new SignJWT({ data: body, iss: this.issuer ?? '' }).setProtectedHeader({ alg: 'RS256' }).sign((await this.#signingKeys()).privateKey)
  }

  async #deliver (delivery: DeliveryRecord, body: string): Promise<void> {
    const signature = await this.sign(delivery.signature_algo, body)
    const attempts = this.retryDelaysMs.length + 1
    for (let attempt = 1; attempt <= attempts && !this.#closed; attempt++) {
      let status: number | null = null
      let error: string | null = null
      try {
        const res = await request(delivery.webhook_url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-lago-signature': signature,
            'x-lago-signature-algorithm': delivery.signature_algo,
            'x-lago-unique-key': delivery.unique_key
          },
          body,
          headersTimeout: this.timeoutMs,
          bodyTimeout: this.timeoutMs
        })
        status = res.statusCode
        await res.body.dump()
      } catch (err) {
        error = err instanceof Error ? err.message : String(err)
      }
      delivery.attempts.push({ at: new Date().toISOString(), http_status: status, error })
      if (status !== null && SUCCESS.has(status)) {
        delivery.status = 'succeeded'
        return
      }
      delivery.status = attempt < attempts ? 'retrying' : 'failed'
      if (attempt < attempts) {
        const base = this.retryDelaysMs[attempt - 1]
        await new Promise((resolve) => setTimeout(resolve, base + Math.random() * base * 0.15))
      }
    }
  }

  /** Resolves once every delivery in progress has succeeded or failed. */
  async settled (): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight])
  }

  /** Stops sending: deliveries waiting for a retry give up. */
  close (): void {
    this.#closed = true
  }
}
