import fp from 'fastify-plugin'
import createError from '@fastify/error'
import type { FastifyRequest } from 'fastify'
import { findTextProblem, type TextProblem } from '../../schemas/text.js'

// Thrown, not sent: each route's error handler answers in its own shape (the Lago-compatible routes in Lago's).
const UnsupportedContentEncodingError = createError<[string]>('unsupported_content_encoding',
  'Content-Encoding "%s" is not supported: send the body uncompressed (no Content-Encoding header)', 415)
const InvalidTextBaseError = createError<[string]>('invalid_text', '%s', 400)

/** 400 invalid_text; `details` names the field (the error handler passes it on). */
function invalidText (where: string, problem: TextProblem): Error {
  return Object.assign(new InvalidTextBaseError(`${where} field ${problem.field} ${problem.message}`), { details: [problem] })
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The route checks the text of its body itself, item by item (batches: one bad item must not cost the
     * others; the Lago-compatible routes: Lago's error shape). Params and query strings are still checked here.
     */
    ownBodyTextChecks?: boolean
  }
}

/**
 * Guards every route against input that would otherwise reach SQL or a parser and fail there (a 500, or worse a
 * failed group commit):
 *
 * - Content-Encoding: no body is decompressed, so one that declares an encoding (gzip, deflate, br...) is refused
 *   with 415 before it is read. Neither LiteLLM's callbacks nor Lago clients compress request bodies, and
 *   decompressing would add a zip-bomb surface to the ingestion path; a compressed body read as text could only
 *   fail later with a misleading error, and a plain body mislabelled gzip must not pass either.
 * - Text: a NUL character or a lone UTF-16 surrogate anywhere in the params, the query string or the body (values
 *   and keys) is refused with 400 invalid_text naming the field. After authentication and schema validation, so
 *   that unauthenticated callers learn nothing and schema errors keep their own answers.
 */
export default fp(async function inputGuards (fastify) {
  fastify.addHook('onRequest', async (request: FastifyRequest) => {
    const encoding = request.headers['content-encoding']
    if (encoding === undefined || encoding.trim() === '' || encoding.trim().toLowerCase() === 'identity') return
    throw new UnsupportedContentEncodingError(encoding.slice(0, 40))
  })

  fastify.addHook('preHandler', async (request: FastifyRequest) => {
    const parts: Array<[string, unknown]> = [['path', request.params], ['querystring', request.query]]
    if (request.routeOptions.config.ownBodyTextChecks !== true) parts.push(['body', request.body])
    for (const [where, value] of parts) {
      const problem = findTextProblem(value)
      if (problem === undefined) continue
      throw invalidText(where, problem)
    }
  })
}, { name: 'input-guards' })
