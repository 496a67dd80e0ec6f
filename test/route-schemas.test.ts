import t from 'tap'
import { compileRouteSchemas } from '../app.js'
import { build } from './helpers/app.js'

const OFFLINE = { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', API_KEYS: 'key' }

// Route schemas compile on first use (app.ts), not at start: this compiles every one, so that a schema Ajv or
// fast-json-stringify refuses fails here rather than on a route's first request.
t.test('every route schema compiles', async (t) => {
  const app = await build(t, OFFLINE)
  const compiled = compileRouteSchemas(app)
  t.ok(compiled >= 60, `${compiled} validators and serializers compiled`)
  t.equal(compileRouteSchemas(app), 0, 'each once')
})

t.test('a schema is compiled by the first request that needs it, and validates as before', async (t) => {
  const app = await build(t, OFFLINE)
  const headers = { authorization: 'Bearer key' }
  const bad = await app.inject({ method: 'GET', url: '/api/usage?top=abc', headers })
  t.equal(bad.statusCode, 400)
  t.match(bad.json(), { code: 'validation_error', details: [{ field: '/top' }] })
  // The query string is coerced (top: "5" to 5) by the same validator, now compiled.
  const good = await app.inject({ method: 'GET', url: '/api/usage?top=5', headers })
  t.equal(good.statusCode, 200, good.body)
  t.ok(compileRouteSchemas(app) > 0, 'the other routes still wait for their first request')
})
