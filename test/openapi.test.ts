import { execFile } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import Fastify, { type RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import SwaggerParser from '@apidevtools/swagger-parser'
import app, { serverOptions } from '../app.js'
import { REDIS_URL, runTypeScript, testConfig, testDatabaseUrl } from './helpers/app.js'

type Operation = { operationId?: string, tags?: string[], summary?: string, security?: Array<Record<string, string[]>>, responses: Record<string, unknown> }
type Document = { openapi: string, paths: Record<string, Record<string, Operation>>, components: { securitySchemes: Record<string, { type: string, scheme?: string }> } }

const OFFLINE = { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', API_KEYS: 'key' }

/** The whole service as buildApp makes it, with every route it registers recorded. */
async function buildRecordingRoutes (t: { teardown: (fn: () => unknown) => void }) {
  const config = await testConfig(OFFLINE)
  const fastify = Fastify(serverOptions(config))
  const routes: RouteOptions[] = []
  fastify.addHook('onRoute', (route) => { routes.push(route) })
  await fastify.register(fp(app), { config })
  await fastify.ready()
  t.teardown(() => fastify.close())
  return { fastify, routes }
}

/** The document's path of a route: no trailing slash, {param} for :param. */
const documentPath = (url: string): string => (url.length > 1 ? url.replace(/\/$/, '') : url).replace(/:([A-Za-z_]+)/g, '{$1}')

// One app for the whole file: the document does not change once the app is ready.
const built = buildRecordingRoutes(t)

t.test('the generated OpenAPI document is valid and documents every route with its responses and security', async (t) => {
  const { fastify, routes } = await built
  const document = fastify.swagger() as unknown as Document
  t.equal(document.openapi, '3.1.0')
  await t.resolves(SwaggerParser.validate(structuredClone(document) as never), 'valid according to @apidevtools/swagger-parser')
  t.match(document.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer' })

  const documented = routes.filter((r) => r.method !== 'HEAD' && r.schema?.hide !== true)
  t.ok(documented.length >= 25, `${documented.length} routes`)
  const operationIds = new Set<string>()
  for (const route of documented) {
    for (const method of [route.method].flat()) {
      const name = `${method} ${route.url}`
      const operation = document.paths[documentPath(route.url)]?.[method.toLowerCase()]
      if (operation === undefined) {
        t.fail(`${name} is missing from the document`)
        continue
      }
      t.ok(operation.operationId !== undefined && !operationIds.has(operation.operationId), `${name}: a unique operationId`)
      operationIds.add(operation.operationId ?? '')
      t.ok((operation.tags?.length ?? 0) > 0 && operation.summary !== undefined, `${name}: tags and summary`)
      const declared = Object.keys(route.schema?.response as Record<string, unknown>).sort()
      t.same(Object.keys(operation.responses).sort(), declared, `${name}: every response it declares (${declared.join(', ')})`)
      // The Lago-compatible ingestion endpoints under /api take the ingestion tokens, like the webhooks.
      const ingestion = route.url.startsWith('/api/v1/events') || (route.url.startsWith('/webhooks/litellm') && !route.url.includes('/alerts/'))
      const authenticated = route.url.startsWith('/api/') || route.url.startsWith('/webhooks/retry') || route.url.startsWith('/webhooks/stats')
      if (ingestion) {
        t.same(operation.security, [{ webhookToken: [] }, { webhookSignature: [] }], `${name}: webhook token or signature`)
      } else if (authenticated) {
        t.same(operation.security, [{ bearerAuth: [] }], `${name}: bearerAuth`)
        t.ok('401' in operation.responses, `${name}: 401`)
      }
      if (!route.url.startsWith('/health')) t.ok('429' in operation.responses, `${name}: 429 (rate limited)`)
    }
  }
})

t.test('every operation that declares bearerAuth refuses a request without a key', async (t) => {
  const { fastify } = await built
  const document = fastify.swagger() as unknown as Document
  let checked = 0
  for (const [documentedPath, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      if (!(operation.security ?? []).some((s) => 'bearerAuth' in s)) continue
      const url = documentedPath.replace(/\{id\}/g, '00000000-0000-4000-8000-000000000000').replace(/\{[a-z_]+\}/g, 'x')
      const res = await fastify.inject({ method: method.toUpperCase() as 'GET', url })
      t.equal(res.statusCode, 401, `${method.toUpperCase()} ${url}`)
      checked++
    }
  }
  t.ok(checked >= 20, `${checked} operations`)
})

t.test('GET /docs serves Swagger UI and GET /docs/json the document, without a key', async (t) => {
  const { fastify } = await built
  const ui = await fastify.inject('/docs')
  t.equal(ui.statusCode, 200)
  t.match(ui.headers['content-type'], /text\/html/)
  const asset = await fastify.inject('/docs/static/swagger-ui.css')
  t.equal(asset.statusCode, 200, 'its static files are served (@fastify/static)')
  const json = await fastify.inject('/docs/json')
  t.equal(json.statusCode, 200)
  t.same(json.json(), fastify.swagger())
})

t.test('npm run openapi writes the same document', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'openapi-'))
  const target = path.join(dir, 'openapi.json')
  const env = { PATH: process.env.PATH, DATABASE_URL: await testDatabaseUrl(), REDIS_URL, API_KEYS: 'key', FASTIFY_AUTOLOAD_TYPESCRIPT: '1' }
  const { stdout } = await promisify(execFile)(process.execPath, [...runTypeScript(path.join(import.meta.dirname, '..', 'scripts', 'openapi.ts')), target], { cwd: dir, env })
  t.match(stdout, /wrote .*openapi\.json/)
  const written = JSON.parse(await readFile(target, 'utf8')) as Document
  const { fastify } = await built
  t.same(written, fastify.swagger())
})
