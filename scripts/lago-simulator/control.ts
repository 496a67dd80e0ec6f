import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ChaosConfig, EventRejection, Fault, FaultController, FaultScope, OutageMode } from './faults.js'
import type { SimulatorSettings } from './app.js'
import { rateLimiterFrom, type RateLimitSettings } from './rate-limit.js'
import type { RequestLog } from './request-log.js'
import type { ClosePeriodOptions, InvoicePatch, LagoState } from './state.js'
import type { WebhookSender } from './webhooks.js'

interface ControlContext {
  state: LagoState
  faults: FaultController
  requests: RequestLog
  settings: SimulatorSettings
  webhooks: WebhookSender
  controlToken: string | undefined
}

type Body = Record<string, unknown>

const FAULT_TYPES = new Set(['status', 'rate_limit', 'delay', 'drop', 'store_then_drop', 'store_then_stall'])
const OUTAGE_MODES = new Set(['503', 'drop', 'refuse'])

// The smallest well-formed PDF: what a download link serves in trials.
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n')

const badRequest = (reply: FastifyReply, message: string): FastifyReply => reply.code(400).send({ error: message })

/**
 * The simulator's own API, for tests and for a simulator running in another process (benchmark, trials).
 * Not behind the Lago key; behind `x-simulator-token` when a control token is set.
 */
export function registerControlRoutes (control: FastifyInstance, ctx: ControlContext): void {
  const { state, faults, requests, settings, webhooks } = ctx

  control.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    // Served PDFs stand for Lago's storage URLs, which need no key either.
    if (request.url.startsWith('/__simulator/files/')) return
    if (ctx.controlToken !== undefined && request.headers['x-simulator-token'] !== ctx.controlToken) {
      return reply.code(401).send({ error: 'x-simulator-token is missing or wrong' })
    }
  })

  control.get('/health', async () => ({ ok: true, ...state.summary() }))
  control.get('/state', async () => ({ ...state.summary(), settings: { ...state.settings, rate_limit: settings.rateLimit !== null }, faults_applied: faults.applied }))

  control.post('/reset', async () => {
    state.reset()
    faults.clear()
    requests.clear()
    return { ok: true }
  })

  control.put('/settings', async (request, reply) => {
    const body = (request.body ?? {}) as Body
    if (body.strict_events !== undefined) {
      if (typeof body.strict_events !== 'boolean') return badRequest(reply, 'strict_events must be a boolean')
      state.settings.strictEvents = body.strict_events
    }
    if (body.max_batch_size !== undefined) {
      if (!Number.isInteger(body.max_batch_size) || (body.max_batch_size as number) < 1) return badRequest(reply, 'max_batch_size must be a positive integer')
      state.settings.maxBatchSize = body.max_batch_size as number
    }
    if (body.rate_limit !== undefined) settings.rateLimit = rateLimiterFrom(body.rate_limit as boolean | RateLimitSettings)
    if (typeof body.api_key === 'string' && body.api_key !== '') settings.apiKey = body.api_key
    return { strict_events: state.settings.strictEvents, max_batch_size: state.settings.maxBatchSize, rate_limit: settings.rateLimit !== null }
  })

  control.get('/requests', async (request) => {
    const query = request.query as Record<string, string | undefined>
    const since = query.since !== undefined ? Number(query.since) : undefined
    return { total: requests.total, requests: requests.entries({ since, route: query.route, method: query.method }) }
  })
  control.delete('/requests', async () => {
    requests.clear()
    return { ok: true }
  })

  control.get('/events', async () => ({ events: state.storedEvents() }))
  control.get('/unbilled-events', async () => ({ unbilled_events: state.unbilledEvents() }))

  control.get('/faults', async () => ({ ...faults.list(), applied: faults.applied }))
  control.delete('/faults', async () => {
    faults.clear()
    return { ok: true }
  })
  control.delete('/faults/:id', async (request, reply) => {
    const removed = faults.remove(Number((request.params as { id: string }).id))
    return removed ? { ok: true } : reply.code(404).send({ error: 'no such fault' })
  })
  /** Body: a Fault ({type: "status", status: 503} …) plus optional route, times (null = until cleared), probability. */
  control.post('/faults', async (request, reply) => {
    const body = (request.body ?? {}) as Body
    if (typeof body.type !== 'string' || !FAULT_TYPES.has(body.type)) return badRequest(reply, `type must be one of ${[...FAULT_TYPES].join(', ')}`)
    if (body.type === 'status' && !(Number.isInteger(body.status) && (body.status as number) >= 400 && (body.status as number) <= 599)) return badRequest(reply, 'status must be an HTTP error status')
    if ((body.type === 'delay' || body.type === 'store_then_stall') && !(typeof body.ms === 'number' && body.ms >= 0)) return badRequest(reply, 'ms must be a number of milliseconds')
    const { route, times, probability, ...fault } = body
    const scope: FaultScope = {
      ...(typeof route === 'string' ? { route } : {}),
      times: times === null ? Infinity : typeof times === 'number' ? times : 1,
      ...(typeof probability === 'number' ? { probability } : {})
    }
    return { id: faults.add(fault as unknown as Fault, scope) }
  })
  /** Body: {transaction_ids?: [...], properties?: {...}, errors?: {field: [codes]}, route?, times?}. */
  control.post('/faults/reject-events', async (request, reply) => {
    const body = (request.body ?? {}) as Body
    if (!Array.isArray(body.transaction_ids) && typeof body.properties !== 'object') return badRequest(reply, 'give transaction_ids or properties')
    const spec: EventRejection = {
      ...(Array.isArray(body.transaction_ids) ? { transactionIds: body.transaction_ids.map(String) } : {}),
      ...(typeof body.properties === 'object' && body.properties !== null ? { properties: body.properties as Record<string, string | number> } : {}),
      ...(typeof body.errors === 'object' && body.errors !== null ? { errors: body.errors as Record<string, string[]> } : {}),
      ...(typeof body.route === 'string' ? { route: body.route } : {}),
      ...(typeof body.times === 'number' ? { times: body.times } : {})
    }
    return { id: faults.rejectEvents(spec) }
  })
  /** Body: {duration_ms, mode: "503" | "drop" | "refuse"}. */
  control.post('/faults/outage', async (request, reply) => {
    const body = (request.body ?? {}) as Body
    const mode = String(body.mode ?? '503')
    if (typeof body.duration_ms !== 'number' || body.duration_ms <= 0) return badRequest(reply, 'duration_ms must be a positive number')
    if (!OUTAGE_MODES.has(mode)) return badRequest(reply, 'mode must be 503, drop or refuse')
    faults.outage(body.duration_ms, mode as OutageMode)
    return { ok: true, until: new Date(Date.now() + body.duration_ms).toISOString() }
  })
  /** Body: ChaosConfig ({seed, probabilities: {status503: 0.05, storeThenDrop: 0.02, …}, rejectEventProbability, …}); DELETE stops it. */
  control.post('/faults/chaos', async (request, reply) => {
    const body = (request.body ?? {}) as Body
    if (typeof body.seed !== 'number' || typeof body.probabilities !== 'object' || body.probabilities === null) return badRequest(reply, 'seed (number) and probabilities (object) are required')
    try {
      faults.chaos(body as unknown as ChaosConfig)
    } catch (err) {
      return badRequest(reply, (err as Error).message)
    }
    return { ok: true }
  })
  control.delete('/faults/chaos', async () => {
    faults.chaos(null)
    return { ok: true }
  })

  /** Webhook endpoints, every delivery with its attempts, the organization's HMAC key and the jwt issuer. */
  control.get('/webhooks', async () => ({
    organization_id: webhooks.organizationId,
    hmac_key: webhooks.hmacKey,
    issuer: webhooks.issuer,
    endpoints: webhooks.endpoints,
    deliveries: webhooks.deliveries
  }))
  /** Lago's hourly events validation, now: an events.errors webhook when stored events cannot be billed. */
  control.post('/webhooks/events-errors', async () => ({ events_errors: state.validateEvents() }))
  /** A new signing key pair (jwt): receivers must fetch the public key again. */
  control.post('/webhooks/rotate-key', async () => {
    await webhooks.rotateKey()
    return { ok: true }
  })
  /** Body: {webhook_type, object_type, object}: sends any webhook (alerts, wallets…) to the subscribed endpoints. */
  control.post('/webhooks/send', async (request, reply) => {
    const body = (request.body ?? {}) as Body
    if (typeof body.webhook_type !== 'string' || typeof body.object_type !== 'string' || typeof body.object !== 'object' || body.object === null) {
      return badRequest(reply, 'webhook_type, object_type (strings) and object are required')
    }
    webhooks.emit(body.webhook_type, body.object_type, body.object)
    return { ok: true }
  })
  /** Body: {hmac_key?, issuer?, retry_delays_ms?}. */
  control.put('/webhooks/settings', async (request) => {
    const body = (request.body ?? {}) as Body
    if (typeof body.hmac_key === 'string' && body.hmac_key !== '') webhooks.hmacKey = body.hmac_key
    if (typeof body.issuer === 'string' && body.issuer !== '') webhooks.issuer = body.issuer
    if (Array.isArray(body.retry_delays_ms) && body.retry_delays_ms.every((n) => typeof n === 'number' && n >= 0)) webhooks.retryDelaysMs = body.retry_delays_ms as number[]
    return { hmac_key_set: true, issuer: webhooks.issuer, retry_delays_ms: webhooks.retryDelaysMs }
  })

  /** Closes the subscription's billing period: a finalized invoice from its usage. Body: ClosePeriodOptions. */
  control.post('/subscriptions/:external_id/close-period', async (request) =>
    state.closePeriod((request.params as { external_id: string }).external_id, (request.body ?? {}) as ClosePeriodOptions))
  /** Body: InvoicePatch ({status, payment_status, issuing_date, file_url}). */
  control.put('/invoices/:lago_id', async (request) =>
    state.updateInvoice((request.params as { lago_id: string }).lago_id, (request.body ?? {}) as InvoicePatch))
  /** Makes the PDF available: later downloads return the invoice with a file_url served here. */
  control.post('/invoices/:lago_id/pdf', async (request) =>
    state.generateInvoicePdf((request.params as { lago_id: string }).lago_id))
  control.get('/files/invoices/:file', async (request, reply) => {
    const lagoId = (request.params as { file: string }).file.replace(/\.pdf$/, '')
    if (!state.hasInvoice(lagoId)) return reply.code(404).send({ error: 'no such invoice' })
    return reply.type('application/pdf').send(PDF)
  })
}
