import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import type { FastifyPluginAsync } from 'fastify'
import fastifyStatic from '@fastify/static'

/** The page's own files: next to this file in the sources; `npm run build` copies them next to the compiled one. */
const staticRoot = path.join(import.meta.dirname, 'static')
/** uPlot from node_modules (a production dependency): never a CDN, so the page works offline. */
const uplotRoot = path.dirname(createRequire(import.meta.url).resolve('uplot'))

// The page holds no data and no secret: it asks the API with the key the operator types (kept in sessionStorage).
// Only this origin's scripts, styles and API; no inline script, no framing.
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY'
}

/** GET /dashboard: the operator's page (pipeline, problems, usage and cost, Lago), static files over the JSON API. */
const plugin: FastifyPluginAsync = async (fastify) => {
  if (!existsSync(path.join(staticRoot, 'index.html'))) throw new Error(`the dashboard's files are missing from ${staticRoot} (npm run build copies them)`)
  fastify.addHook('onSend', async (_request, reply) => { reply.headers(SECURITY_HEADERS) })

  await fastify.register(fastifyStatic, { root: staticRoot, prefix: '/static/', index: false, wildcard: true })
  await fastify.register(fastifyStatic, { root: uplotRoot, prefix: '/vendor/uplot/', index: false, decorateReply: false, allowedPath: (file) => /^\/uPlot\.(esm\.js|min\.css)$/.test(file) })

  fastify.get('/', { schema: { hide: true } }, async (_request, reply) => await reply.header('cache-control', 'no-cache').sendFile('index.html'))
}

export default plugin
