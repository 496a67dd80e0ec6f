import path from 'node:path'
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import autoload from '@fastify/autoload'
import type { AnySchema, Ajv, ValidateFunction } from 'ajv'
import fastJsonStringify, { type Schema as SerializerSchema } from 'fast-json-stringify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config, Tuning } from './schemas/config.js'
import { EXPOSED_SERVER_ERRORS, errorBody, type ErrorResponseBody } from './schemas/errors.js'
import { DATABASE_RETRY_AFTER_SECONDS, databaseUnavailable, databaseUnavailableMessage } from './db/errors.js'
import { isLagoError } from './plugins/app/lago/errors.js'
import { lagoErrorAnswer } from './plugins/app/lago/http-errors.js'
import { bodyAjv, queryAjv, textAjv, validationDetails } from './schemas/validation.js'
import { tolerantJsonParser } from './plugins/external/json-text.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The body exactly as received, kept for webhook signature checks. */
    rawBody?: string
  }
}

export interface AppOptions {
  config: Config
  /** Internal timings to override (tests only: short polls and probes); schemas/config.ts TUNING otherwise. */
  tuning?: Partial<Tuning>
}

const FASTIFY_ERROR_CODES: Record<string, string> = {
  FST_ERR_VALIDATION: 'validation_error',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'empty_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_content_length',
  FST_ERR_NOT_FOUND: 'not_found'
}

/** Secrets that travel in a URL path (LiteLLM's alert webhook sends no header, so its secret is in the path). */
const redactUrl = (url: string): string => url.replace(/(\/webhooks\/litellm\/alerts\/)[^/?#]+/, '$1[redacted]')

/** One error shape for everything; 5xx details stay in the logs. */
function errorHandler (err: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (databaseUnavailable(err)) {
    // Logged once per outage and summed up meanwhile (plugins/external/db.ts), not once per request.
    request.server.dbAvailability.refused(err)
    reply.header('retry-after', DATABASE_RETRY_AFTER_SECONDS)
    return reply.code(503).send(errorBody(503, 'database_unavailable', databaseUnavailableMessage(err)))
  }
  if (isLagoError(err)) {
    const answer = lagoErrorAnswer(err)
    // Lago down, failing or throttling is already a warning from the Lago client; this ties it to the request.
    request.log.info({ err: { message: err.message }, statusCode: answer.statusCode }, 'Lago error answered')
    if (answer.retryAfterSeconds !== undefined) reply.header('retry-after', answer.retryAfterSeconds)
    return reply.code(answer.statusCode).send(errorBody(answer.statusCode, answer.code, answer.message, answer.details))
  }
  const statusCode = err.statusCode !== undefined && err.statusCode >= 400 ? err.statusCode : 500
  if (statusCode >= 500) {
    request.log.error({ err, request: { method: request.method, url: redactUrl(request.url) } }, 'request failed')
  } else {
    request.log.info({ err: { code: err.code, message: err.message } }, 'request rejected')
  }
  if (err.validation !== undefined) {
    const details = validationDetails(err.validation)
    const where = err.validationContext ?? 'request'
    const first = details[0]
    const message = first !== undefined
      ? `${where} field ${first.field} ${first.message}`
      : `${where} is invalid`
    return reply.code(400).send(errorBody(400, 'validation_error', message, details))
  }
  // Our named errors (@fastify/error upper-cases codes) answer with their code in snake_case.
  const ownCode = typeof err.code === 'string' && /^[A-Za-z_]+$/.test(err.code) && !err.code.startsWith('FST_') ? err.code.toLowerCase() : undefined
  if (statusCode >= 500 && (ownCode === undefined || !EXPOSED_SERVER_ERRORS.has(ownCode))) {
    return reply.code(statusCode).send(errorBody(statusCode, 'internal_error', 'Something went wrong on our side; it has been logged'))
  }
  const code = FASTIFY_ERROR_CODES[err.code] ?? ownCode ?? 'bad_request'
  // A 4xx may name its fields (invalid_text: plugins/external/input-guards.ts).
  const details = (err as { details?: ErrorResponseBody['details'] }).details
  return reply.code(statusCode).send(errorBody(statusCode, code, err.message, statusCode < 500 ? details : undefined))
}

// Response serializers compiled once per schema object and process, as the validators are (ajv caches by
// schema object): every app built in one process (tests build dozens) reuses them instead of compiling again.
const serializers = new WeakMap<object, (data: unknown) => string>()
function serializerFor (schema: object): (data: unknown) => string {
  let serialize = serializers.get(schema)
  if (serialize === undefined) {
    serialize = fastJsonStringify(schema as SerializerSchema) as (data: unknown) => string
    serializers.set(schema, serialize)
  }
  return serialize
}

// Route schemas are compiled when a route first uses them, not before the server is ready: compiling them all
// (Ajv for requests, fast-json-stringify for responses) was about 230 ms of a 1.1 s start (npm run bench --
// startup). A route's first request pays its own (a few ms, up to 30 for the largest); test/route-schemas.test.ts
// compiles every one, so a schema that does not compile still fails the tests rather than a request.
type Validator = ((data: unknown, dataCxt?: unknown) => boolean) & { errors?: ValidateFunction['errors'], schemaEnv?: unknown }

/** Each app's schemas not compiled yet, by root instance: compileRouteSchemas compiles them. */
const uncompiled = new WeakMap<object, Set<() => void>>()

/** `build` run on the first call of the returned getter, and listed in `pending` until then (compileRouteSchemas). */
function onFirstUse<T> (build: () => T, pending: Set<() => void>): () => T {
  let built: T | undefined
  const compile = (): T => {
    built = build()
    pending.delete(compile)
    return built
  }
  pending.add(compile)
  return () => built ?? compile()
}

function lazyValidator (ajv: Ajv, schema: AnySchema, pending: Set<() => void>): Validator {
  const compiled = onFirstUse<ValidateFunction>(() => ajv.compile(schema), pending)
  const validate: Validator = (data, dataCxt) => {
    const run = compiled()
    const valid = run(data, dataCxt as Parameters<ValidateFunction>[1])
    validate.errors = run.errors
    return valid
  }
  // Fastify passes the request as parent only to a validator that has schemaEnv, as Ajv's own do: Ajv needs the
  // parent to replace a coerced root value.
  validate.schemaEnv = true
  return validate
}

function lazySerializer (schema: object, pending: Set<() => void>): (data: unknown) => string {
  const serialize = onFirstUse(() => serializerFor(schema), pending)
  return (data) => serialize()(data)
}

/** Compiles every route schema of an app (built by buildApp) not compiled yet; throws what a compiler throws. */
export function compileRouteSchemas (fastify: FastifyInstance): number {
  const pending = uncompiled.get(fastify)
  if (pending === undefined) throw new Error('not an app built by buildApp')
  const count = pending.size
  for (const compile of [...pending]) compile()
  return count
}

/** The service as a plugin: infrastructure, then the project's services, then the routes. */
export default async function app (fastify: FastifyInstance, opts: AppOptions): Promise<void> {
  const ajvFor = { body: bodyAjv, querystring: queryAjv } as Record<string, typeof textAjv | undefined>
  const pending = new Set<() => void>()
  uncompiled.set(fastify, pending)
  fastify.setValidatorCompiler(({ schema, httpPart }) => lazyValidator(ajvFor[httpPart ?? ''] ?? textAjv, schema as AnySchema, pending))
  fastify.setSerializerCompiler(({ schema }) => lazySerializer(schema as object, pending))

  // JSON only, parsed safely (prototype-poisoning checks) while keeping the raw text for signatures. Python's
  // NaN/Infinity (LiteLLM can send them) are tolerated; CloudEvents (LiteLLM's OpenMeter callback) are JSON too.
  const parseJson = tolerantJsonParser(fastify.getDefaultJsonParser('error', 'error'))
  fastify.removeContentTypeParser('text/plain')
  fastify.addContentTypeParser(['application/json', 'application/cloudevents+json', 'application/cloudevents-batch+json'],
    { parseAs: 'string' }, (request, body, done) => {
      request.rawBody = body as string
      parseJson(request, body as string, done)
    })

  // The request id (an upstream x-request-id, else generated) goes back to the caller for support requests.
  fastify.addHook('onRequest', async (request, reply) => { reply.header('x-request-id', request.id) })

  // Shutting down: answers still in flight close their keep-alive connection. Otherwise a connection busy when the
  // close began goes idle afterwards and stays open until keepAliveTimeout, past the shutdown grace period.
  let closing = false
  fastify.addHook('preClose', async () => { closing = true })
  fastify.addHook('onSend', async (_request, reply) => { if (closing) reply.header('connection', 'close') })

  // Handlers first: plugins and routes registered later inherit them.
  fastify.setErrorHandler(errorHandler)

  await fastify.register(autoload, {
    dir: path.join(import.meta.dirname, 'plugins', 'external'),
    options: opts,
    forceESM: true
  })
  // Once the rate limiter exists: probing for routes counts against the caller's limit like any request.
  fastify.setNotFoundHandler({ preHandler: fastify.rateLimit() }, (request, reply) => reply.code(404)
    .send(errorBody(404, 'not_found', `No route ${request.method} ${request.url.split('?')[0]}`)))
  await fastify.register(autoload, {
    dir: path.join(import.meta.dirname, 'plugins', 'app'),
    options: opts,
    forceESM: true
  })
  // URL = folder under routes/. The folder is the policy: its autohooks.ts says how its routes authenticate, limit
  // and answer errors. /api/v1 (Lago's API, for LiteLLM) is its own tree so that it inherits nothing of /api's.
  // A folder's autohooks.ts replaces its parent's (overwriteHooks) rather than adding to them.
  const routes = { options: opts, autoHooks: true, cascadeHooks: true, overwriteHooks: true, routeParams: true, forceESM: true }
  await fastify.register(autoload, {
    ...routes,
    dir: path.join(import.meta.dirname, 'routes'),
    // A route's static files (routes/dashboard/static) are served, not loaded; routes/api/v1 is loaded below.
    ignorePattern: /(^|\/)static$|^api\/v1$/
  })
  await fastify.register(autoload, {
    ...routes,
    dir: path.join(import.meta.dirname, 'routes', 'api', 'v1'),
    options: { ...opts, prefix: '/api/v1' }
  })
}

/** Fastify server options for a config: shared by server.ts and the tests so that both behave the same. */
export function serverOptions (config: Config): FastifyServerOptions {
  return {
    logger: {
      level: config.LOG_LEVEL,
      redact: {
        paths: [
          'req.headers.authorization', 'req.headers["webhook-signature"]', 'req.headers["x-api-key"]',
          'headers.authorization', '*.apiKey', '*.api_key', '*.password', '*.secret', '*.token'
        ],
        censor: '[redacted]'
      },
      serializers: {
        req: (req: FastifyRequest) => ({
          method: req.method,
          url: redactUrl(req.url),
          host: req.host,
          remoteAddress: req.ip,
          remotePort: req.socket?.remotePort
        })
      }
    },
    // Two log lines per request would cost half the single-event throughput (npm run bench); errors and
    // rejections are logged by the error handler with their request id either way.
    logController: new LogController({ disableRequestLogging: !config.LOG_REQUESTS }),
    requestIdHeader: 'x-request-id',
    trustProxy: config.TRUST_PROXY,
    bodyLimit: config.BODY_LIMIT_BYTES,
    requestTimeout: config.REQUEST_TIMEOUT_MS,
    connectionTimeout: config.REQUEST_TIMEOUT_MS,
    // Longer than the usual 60 s idle timeout of load balancers, so they never reuse a closed socket.
    keepAliveTimeout: 72_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    pluginTimeout: 30_000
  }
}

/** Builds the whole service from a config object. */
export async function buildApp (config: Config, overrides: FastifyServerOptions = {}, tuning: Partial<Tuning> = {}): Promise<FastifyInstance> {
  const fastify = Fastify({ ...serverOptions(config), ...overrides }).withTypeProvider<TypeBoxTypeProvider>()
  // fp: the error handler, parsers and validator compiler must apply to the root instance.
  await fastify.register(fp(app), { config, tuning })
  return fastify as unknown as FastifyInstance
}
