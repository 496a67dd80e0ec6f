import net from 'node:net'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { build } from '../../helpers/app.js'

const FIFTY_MIB = 50 * 1024 * 1024
const CHUNK = Buffer.alloc(64 * 1024, 0x20)

interface Outcome { status: number, sentBeforeAnswer: number, total: number }

/**
 * Starts a POST of `total` bytes to a listening app and keeps sending (honouring backpressure) until the whole
 * body is sent or an answer arrives; reports the status and how many body bytes had been sent by then. A server
 * that reads the whole body before answering cannot answer before the last byte.
 */
async function postLarge (app: FastifyInstance, path: string, headers: Record<string, string>, total = FIFTY_MIB): Promise<Outcome> {
  const { port } = app.server.address() as net.AddressInfo
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const answer = { status: 0, sentBeforeAnswer: -1 }
  let sent = 0
  const answered = new Promise<void>((resolve, reject) => {
    let head = ''
    socket.on('data', (data) => {
      head += data.toString('latin1')
      const match = /^HTTP\/1\.1 (\d{3})/.exec(head)
      if (match !== null && answer.status === 0) {
        answer.status = Number(match[1])
        answer.sentBeforeAnswer = sent
        resolve()
      }
    })
    socket.once('close', () => { if (answer.status === 0) reject(new Error(`closed without an answer after ${sent} bytes`)) })
  })
  socket.on('error', () => {}) // the server may close while we are still sending: that is the point
  const lines = [`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Content-Type: application/json', `Content-Length: ${total}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
  socket.write(lines.join('\r\n') + '\r\n\r\n')
  while (sent < total && answer.status === 0 && !socket.destroyed) {
    const piece = CHUNK.subarray(0, Math.min(CHUNK.length, total - sent))
    sent += piece.length
    if (!socket.write(piece)) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), answered.catch(() => {})])
  }
  await answered
  socket.destroy()
  return { ...answer, total }
}

async function listening (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string>): Promise<FastifyInstance> {
  const app = await build(t, env)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return app
}

t.test('a 50 MiB POST without a webhook token is refused before its body is read', async (t) => {
  const app = await listening(t, { WEBHOOK_TOKENS: 'ingest-token' })
  const outcome = await postLarge(app, '/webhooks/litellm/generic', {})
  t.comment(`answered ${outcome.status} after ${outcome.sentBeforeAnswer} of ${outcome.total} bytes`)
  t.equal(outcome.status, 401)
  t.ok(outcome.sentBeforeAnswer < outcome.total / 2, 'answered while the client was still sending')
})

t.test('a 50 MiB POST with a wrong token is refused before its body is read', async (t) => {
  const app = await listening(t, { WEBHOOK_TOKENS: 'ingest-token' })
  const outcome = await postLarge(app, '/webhooks/litellm/generic', { Authorization: 'Bearer guessed' })
  t.equal(outcome.status, 401)
  t.ok(outcome.sentBeforeAnswer < outcome.total / 2, 'answered while the client was still sending')
})

t.test('with only a signing secret, a POST without well-formed signature headers is refused before its body is read', async (t) => {
  const app = await listening(t, { WEBHOOK_SECRET: `whsec_${Buffer.from('a signing key of 24 bytes').toString('base64')}` })
  const now = Math.floor(Date.now() / 1000)
  const cases: Array<[string, Record<string, string>]> = [
    ['no signature headers', {}],
    ['no webhook-id', { 'webhook-timestamp': String(now), 'webhook-signature': 'v1,AAAA' }],
    ['a timestamp an hour old', { 'webhook-id': 'msg_1', 'webhook-timestamp': String(now - 3600), 'webhook-signature': 'v1,AAAA' }],
    ['a timestamp that is not Unix seconds', { 'webhook-id': 'msg_1', 'webhook-timestamp': 'yesterday', 'webhook-signature': 'v1,AAAA' }],
    ['no v1 signature', { 'webhook-id': 'msg_1', 'webhook-timestamp': String(now), 'webhook-signature': 'v2,AAAA' }]
  ]
  for (const [what, headers] of cases) {
    const outcome = await postLarge(app, '/webhooks/litellm/generic', headers)
    t.equal(outcome.status, 401, what)
    t.ok(outcome.sentBeforeAnswer < outcome.total / 2, `${what}: answered while the client was still sending`)
  }
})

t.test('the Lago-compatible endpoint checks its token before reading the body', async (t) => {
  const app = await listening(t, { WEBHOOK_TOKENS: 'ingest-token', BODY_LIMIT_BYTES: String(FIFTY_MIB) })
  const outcome = await postLarge(app, '/api/v1/events', {})
  t.equal(outcome.status, 401)
  t.ok(outcome.sentBeforeAnswer < outcome.total / 2, 'answered while the client was still sending')
})

t.test('a wrong alerts secret is refused before the body is read', async (t) => {
  const app = await listening(t, { LITELLM_ALERTS_SECRET: 'alerts-secret-of-some-length', BODY_LIMIT_BYTES: String(FIFTY_MIB) })
  const outcome = await postLarge(app, '/webhooks/litellm/alerts/guessed', {})
  t.equal(outcome.status, 404)
  t.ok(outcome.sentBeforeAnswer < outcome.total / 2, 'answered while the client was still sending')
})
