import { createHmac, randomBytes } from 'node:crypto'
import t from 'tap'
import { buildApp, serverOptions } from '../../../app.js'
import { build, seedEvent, testConfig } from '../../helpers/app.js'

const secretBytes = randomBytes(32)
const SECRET = `whsec_${secretBytes.toString('base64')}`

function sign (body: string, { id = 'msg_1', timestamp = Math.floor(Date.now() / 1000), key = secretBytes } = {}) {
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${signature}` }
}

type App = Awaited<ReturnType<typeof build>>
const post = (app: App, body: string, headers: Record<string, string>, url = '/webhooks/litellm') =>
  app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload: body })

t.test('bearer tokens: missing or wrong is 401 with one message, a listed token passes', async (t) => {
  const app = await build(t, { WEBHOOK_TOKENS: 'token-one, token-two' })
  const body = JSON.stringify(seedEvent())
  const missing = await post(app, body, {})
  const wrong = await post(app, body, { authorization: 'Bearer token-three' })
  const wrongScheme = await post(app, body, { authorization: 'Basic token-one' })
  for (const res of [missing, wrong, wrongScheme]) {
    t.equal(res.statusCode, 401)
    t.match(res.json(), { code: 'unauthorized', message: /Authorization: Bearer/ })
  }
  t.equal(missing.body, wrong.body, 'a wrong token and no token get the same answer')
  t.equal((await post(app, body, { authorization: 'Bearer token-two' })).statusCode, 202)
  const batch = await post(app, JSON.stringify([seedEvent()]), {}, '/webhooks/litellm/batch')
  t.equal(batch.statusCode, 401, 'the batch endpoint is protected too')
  t.equal((await post(app, JSON.stringify([seedEvent()]), { authorization: 'Bearer token-one' }, '/webhooks/litellm/batch')).statusCode, 202)
  t.equal((await app.inject('/health/live')).statusCode, 200, 'health stays open')
})

t.test('Standard Webhooks signatures: valid passes; tampered, stale, future, unsigned fail', async (t) => {
  const app = await build(t, { WEBHOOK_SECRET: SECRET })
  const body = JSON.stringify(seedEvent())
  t.equal((await post(app, body, sign(body))).statusCode, 202, 'valid signature')

  const other = JSON.stringify(seedEvent())
  const multi = sign(other)
  multi['webhook-signature'] = `v1,${randomBytes(32).toString('base64')} ${multi['webhook-signature']}`
  t.equal((await post(app, other, multi)).statusCode, 202, 'any one of several signatures may match (key rotation)')

  const cases: Array<[string, string, Record<string, string>, RegExp]> = [
    ['tampered body', body.replace('gpt-4o', 'gpt-4o-mini'), sign(body), /does not match/],
    ['wrong key', body, sign(body, { key: randomBytes(32) }), /does not match/],
    ['six minutes old', body, sign(body, { timestamp: Math.floor(Date.now() / 1000) - 360 }), /too old/],
    ['six minutes ahead', body, sign(body, { timestamp: Math.floor(Date.now() / 1000) + 360 }), /future/],
    ['no signature', body, {}, /Missing or invalid/],
    ['missing id', body, { ...sign(body), 'webhook-id': '' }, /does not match|missing|webhook-id must be/]
  ]
  for (const [name, payload, headers, message] of cases) {
    const res = await post(app, payload, headers)
    t.equal(res.statusCode, 401, name)
    t.match(res.json().message, message, `${name}: ${res.json().message}`)
  }
})

t.test('with both a secret and tokens, either credential is enough', async (t) => {
  const app = await build(t, { WEBHOOK_SECRET: SECRET, WEBHOOK_TOKENS: 'tok' })
  const a = JSON.stringify(seedEvent())
  const b = JSON.stringify(seedEvent())
  t.equal((await post(app, a, { authorization: 'Bearer tok' })).statusCode, 202)
  t.equal((await post(app, b, sign(b))).statusCode, 202)
  t.equal((await post(app, a, { authorization: 'Bearer nope' })).statusCode, 401)
})

t.test('credentials never reach the logs', async (t) => {
  const lines: string[] = []
  const config = await testConfig({ WEBHOOK_TOKENS: 'super-secret-token', LOG_LEVEL: 'info', LOG_REQUESTS: 'true' })
  const options = serverOptions(config)
  const app = await buildApp(config, {
    logger: { ...(options.logger as object), stream: { write: (line: string) => { lines.push(line) } } }
  })
  t.teardown(() => app.close())
  await app.ready()
  const body = JSON.stringify(seedEvent())
  await post(app, body, { authorization: 'Bearer super-secret-token' })
  await post(app, body, { authorization: 'Bearer wrong-secret-token' })
  t.ok(lines.length > 0, 'requests were logged')
  t.notMatch(lines.join('\n'), /secret-token/, 'no token in any log line')
})
