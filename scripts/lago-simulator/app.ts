import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { LagoFailure, UNAUTHORIZED_BODY } from './errors.js'
import { FaultController, type Fault } from './faults.js'
import { rateLimiterFrom, type RateLimiter, type RateLimitSettings } from './rate-limit.js'
import { RequestLog } from './request-log.js'
import { registerControlRoutes } from './control.js'
import { registerLagoRoutes, type LagoHandler } from './routes.js'
import { LagoState } from './state.js'
import { WebhookSender, type WebhookSenderOptions } from './webhooks.js'

export interface LagoSimulatorOptions {
  /** The organization API key expected as Bearer token. Default "lago-simulator-key". */
  apiKey?: string
  /** Refuse events with a missing external_subscription_id or an unknown code (422). Default false, as real Lago. */
  strictEvents?: boolean
  /** Most events per batch (LAGO_EVENTS_BATCH_MAX_LENGTH). Default 100. */
  maxBatchSize?: number
  /** Lago Cloud's per-organization rate limit with x-ratelimit-* headers: true for the defaults. Off by default. */
  rateLimit?: boolean | RateLimitSettings
  /** When set, the /__simulator control API requires `x-simulator-token: <token>`. */
  controlToken?: string
  /** Most requests kept in the request log. Default 100,000. */
  requestLogLimit?: number
  /** Fastify logging (off by default). */
  logger?: boolean
  /** Keep each request's events (as JSON text) in the request log, to compare resends. Off by default. */
  recordEventBodies?: boolean
  /** Outgoing webhooks: HMAC key, jwt issuer, retry delays (default Lago's ~3 s and ~18 s). */
  webhooks?: WebhookSenderOptions
}

/** Settings that can change while it runs (in-process or PUT /__simulator/settings). */
export interface SimulatorSettings {
  apiKey: string
  rateLimit: RateLimiter | null
}

export interface LagoSimulatorApp {
  app: FastifyInstance
  state: LagoState
  faults: FaultController
  requests: RequestLog
  settings: SimulatorSettings
  webhooks: WebhookSender
}

declare module 'fastify' {
  interface FastifyRequest {
    simStartedAt: number
    simFault: Fault | null
    simStored: boolean
    simLogged: boolean
  }
}

/** Default bodies for injected statuses: Lago's crash body for 500, a reverse proxy's page for gateway errors. */
function faultBody (status: number): { body: string, type: string } {
  if (status === 500) return { body: JSON.stringify({ status: 500, errors: [{ message: 'simulated failure', backtrace: [] }], data: {} }), type: 'application/json; charset=utf-8' }
  if (status >= 500) return { body: `<html><head><title>${status}</title></head><body><h1>${status}</h1>simulated</body></html>`, type: 'text/html' }
  return { body: JSON.stringify({ status, error: 'Simulated' }), type: 'application/json; charset=utf-8' }
}

const eventsOf = (request: FastifyRequest): unknown[] => {
  const body = request.body as Record<string, unknown> | undefined
  if (body === undefined || body === null || typeof body !== 'object') return []
  if (Array.isArray(body.events)) return body.events
  return typeof body.event === 'object' && body.event !== null ? [body.event] : []
}

/**
 * The simulator as a Fastify app (not listening): Lago's API under /api/v1 behind Bearer auth, with fault
 * injection and a request log, and the control API under /__simulator.
 */
export function buildLagoSimulator (options: LagoSimulatorOptions = {}): LagoSimulatorApp {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: 64 * 1024 * 1024,
    forceCloseConnections: true,
    // Lago ids may hold any character but '/', like transaction ids with dots.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1000 }
  })
  const state = new LagoState({ strictEvents: options.strictEvents ?? false, maxBatchSize: options.maxBatchSize ?? 100 })
  const faults = new FaultController()
  const webhooks = new WebhookSender(options.webhooks)
  state.onWebhook = (type, objectType, object) => webhooks.emit(type, objectType, object)
  const requests = new RequestLog(options.requestLogLimit)
  const settings: SimulatorSettings = { apiKey: options.apiKey ?? 'lago-simulator-key', rateLimit: rateLimiterFrom(options.rateLimit) }
  const stalls = new Set<AbortController>()

  app.decorateRequest('simStartedAt', 0)
  app.decorateRequest('simFault', null)
  app.decorateRequest('simStored', false)
  app.decorateRequest('simLogged', false)

  const log = (request: FastifyRequest, status: number | 'dropped' | 'aborted'): void => {
    request.simLogged = true
    requests.push({
      at: new Date(request.simStartedAt).toISOString(),
      method: request.method,
      path: request.url,
      route: request.routeOptions.url ?? null,
      status,
      bodyBytes: Number(request.headers['content-length'] ?? 0),
      eventCount: eventsOf(request).length,
      ...(options.recordEventBodies === true ? { events: eventsOf(request).map((e) => JSON.stringify(e)) } : {}),
      fault: request.simFault?.type ?? null,
      stored: request.simStored,
      durationMs: Date.now() - request.simStartedAt
    })
  }

  /** Ends the exchange without an answer: the client sees the connection close. */
  const drop = (request: FastifyRequest, reply: FastifyReply): void => {
    reply.hijack()
    log(request, 'dropped')
    request.raw.socket?.destroy()
  }

  app.addHook('onRequest', async (request) => { request.simStartedAt = Date.now() })
  app.addHook('onResponse', async (request, reply) => {
    if (request.url.startsWith('/__simulator')) return
    log(request, reply.statusCode)
  })
  // The client went away before the answer (it timed out, or its process died). The request is still
  // processed, as a real Lago would; it is logged when the connection closes, since no response will be.
  app.addHook('preHandler', async (request, reply) => {
    if (request.url.startsWith('/__simulator')) return
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished && !request.simLogged) log(request, 'aborted')
    })
  })

  app.setErrorHandler((err: Error & { statusCode?: number, code?: string }, _request, reply) => {
    if (err instanceof LagoFailure) return reply.code(err.status).send(err.body)
    const status = err.statusCode ?? 500
    if (status < 500) return reply.code(status).send({ status, error: `BadRequest: ${err.message}` })
    return reply.code(500).send({ status: 500, errors: [{ message: err.message, backtrace: [] }], data: {} })
  })
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ status: 404, error: 'Not Found' }))

  // The Lago API: auth, Cloud rate limit, faults, then Lago's behaviour.
  app.register(async (api) => {
    api.addHook('onRequest', async (request, reply) => {
      const header = request.headers.authorization ?? ''
      // Lago takes the second whitespace-separated token of the header as the key.
      const token = header.trim().split(/\s+/)[1]
      if (token !== settings.apiKey) return reply.code(401).send(UNAUTHORIZED_BODY)
      const limiter = settings.rateLimit
      if (limiter !== null) {
        const verdict = limiter.check(request.method, request.routeOptions.url ?? request.url)
        reply.headers(verdict.headers)
        if (!verdict.allowed) return reply.code(429).send({ status: 429, error: 'Too Many Requests' })
      }
    })
    api.addHook('preHandler', async (request, reply) => {
      const transactionIds = eventsOf(request).flatMap((e) => typeof e === 'object' && e !== null && typeof (e as { transaction_id?: unknown }).transaction_id === 'string' ? [(e as { transaction_id: string }).transaction_id] : [])
      if (options.recordEventBodies === true) for (const id of transactionIds) requests.received.add(id)
      const fault = faults.take(request.method, request.routeOptions.url ?? request.url, transactionIds)
      request.simFault = fault
      if (fault === null) return
      switch (fault.type) {
        case 'status': {
          const { body, type } = fault.body !== undefined ? { body: JSON.stringify(fault.body), type: 'application/json; charset=utf-8' } : faultBody(fault.status)
          return reply.code(fault.status).headers(fault.headers ?? {}).type(type).send(body)
        }
        case 'rate_limit': {
          const seconds = fault.retryAfterSeconds ?? 1
          const headers: Record<string, string> = {
            'x-ratelimit-limit': String(fault.limit ?? 50),
            'x-ratelimit-remaining': '0',
            'x-ratelimit-reset': String(fault.resetSeconds ?? seconds)
          }
          if (fault.omitRetryAfter !== true) {
            headers['retry-after'] = fault.retryAfterAsDate === true ? new Date(Date.now() + seconds * 1000).toUTCString() : String(seconds)
          }
          return reply.code(429).headers(headers).send({ status: 429, error: 'Too Many Requests' })
        }
        case 'drop':
          drop(request, reply)
          return reply
        case 'delay':
          await sleep(fault.ms)
          break
        default:
          // store_then_* act after processing (handle below).
      }
    })

    const handle = (fn: LagoHandler) => async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      let result: unknown = null
      let failure: LagoFailure | null = null
      try {
        result = await fn(request, faults.rejector(request.method, request.routeOptions.url ?? request.url))
        request.simStored = request.method !== 'GET'
      } catch (err) {
        if (!(err instanceof LagoFailure)) throw err
        failure = err
      }
      const fault = request.simFault
      if (fault?.type === 'store_then_drop') {
        drop(request, reply)
        return reply
      }
      if (fault?.type === 'store_then_stall') {
        const stall = new AbortController()
        stalls.add(stall)
        await sleep(fault.ms, undefined, { signal: stall.signal }).catch(() => {})
        stalls.delete(stall)
        if (request.raw.socket?.destroyed === true) {
          reply.hijack()
          log(request, 'dropped')
          return reply
        }
      }
      if (failure !== null) return reply.code(failure.status).send(failure.body)
      // Lago's download answers 200 with an empty body while the PDF is being generated.
      if (result === null) return reply.code(200).send('')
      return reply.code(200).send(result)
    }
    registerLagoRoutes(api, state, handle)
    api.get('/webhooks/json_public_key', handle(async () => await webhooks.publicKey()))
    api.get('/webhooks/public_key', async (_request, reply) => reply.type('text/plain').send(await webhooks.publicKeyText()))
    api.post('/webhook_endpoints', handle((r) => webhooks.createEndpoint(r.body)))
    api.get('/webhook_endpoints', handle((r) => webhooks.listEndpoints(r.query as Record<string, string>)))
    api.get('/webhook_endpoints/:lago_id', handle((r) => webhooks.getEndpoint((r.params as { lago_id: string }).lago_id)))
    api.put('/webhook_endpoints/:lago_id', handle((r) => webhooks.updateEndpoint((r.params as { lago_id: string }).lago_id, r.body)))
    api.delete('/webhook_endpoints/:lago_id', handle((r) => webhooks.deleteEndpoint((r.params as { lago_id: string }).lago_id)))
  }, { prefix: '/api/v1' })

  app.get('/health', async () => ({ version: 'simulator', github_url: 'https://github.com/getlago/lago-api', message: 'Success' }))

  app.register(async (control) => {
    registerControlRoutes(control, { state, faults, requests, settings, webhooks, controlToken: options.controlToken })
  }, { prefix: '/__simulator' })

  app.addHook('onClose', async () => {
    webhooks.close()
    for (const stall of stalls) stall.abort()
  })

  return { app, state, faults, requests, settings, webhooks }
}
