// The Redis circuit breaker (plugins/external/redis-breaker.ts) on its own, against a real redis-server that the
// test hangs (SIGSTOP) and resumes, through a real ioredis client configured as the service configures it (no
// offline queue, a short command timeout): consecutive timeouts open it, calls then fail at once without reaching
// Redis, a background PING closes it when Redis answers again, and a success in between resets the count.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { Redis } from 'ioredis'
import { RedisBreaker, RedisUnavailableError } from '../../../plugins/external/redis-breaker.js'
import { privateRedis, waitFor, type PrivateRedis } from '../../helpers/redis-server.js'

const COMMAND_TIMEOUT_MS = 100
const THRESHOLD = 3
const COOLDOWN_MS = 200

const hasRedisServer = await promisify(execFile)('sh', ['-c', 'command -v redis-server']).then(() => true, () => false)
const skip = hasRedisServer || process.env.CI === 'true' ? false : 'redis-server is not on PATH (this test hangs a Redis of its own)'

interface Line { level: number, msg: string }

/**
 * A breaker in front of a fresh client of `redis`, and the lines it logs. `commandTimeoutMs`: short where Redis is
 * hung on purpose; a test whose Redis answers takes a long one, so that a loaded machine cannot time out its calls.
 */
async function breakerFor (t: Test, redis: PrivateRedis, commandTimeoutMs = COMMAND_TIMEOUT_MS): Promise<{ breaker: RedisBreaker, client: Redis, lines: Line[] }> {
  const lines: Line[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Line) } })
  const client = new Redis({ host: '127.0.0.1', port: redis.port, commandTimeout: commandTimeoutMs, maxRetriesPerRequest: 1, enableOfflineQueue: false })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await new Promise((resolve) => client.once('ready', resolve))
  const breaker = new RedisBreaker({ client, where: `127.0.0.1:${redis.port}`, log, failureThreshold: THRESHOLD, cooldownMs: COOLDOWN_MS })
  t.teardown(() => { breaker.close() })
  return { breaker, client, lines }
}

const timed = async (fn: () => Promise<unknown>): Promise<{ ms: number, error: unknown }> => {
  const started = performance.now()
  const error = await fn().then(() => undefined, (err: unknown) => err)
  return { ms: performance.now() - started, error }
}

t.test('consecutive timeouts open it, calls then fail at once without reaching Redis, a probe closes it', { skip }, async (t) => {
  t.ok(hasRedisServer, 'redis-server is on PATH (CI=true requires it)')
  if (!hasRedisServer) return
  const redis = await privateRedis(t)
  await redis.start()
  t.teardown(() => { redis.resume() })
  const { breaker, client, lines } = await breakerFor(t, redis)
  // The probes are the breaker's only PINGs: counted to wait on them.
  let probes = 0
  const ping = client.ping.bind(client) as () => Promise<string>
  client.ping = (async () => { probes++; return await ping() }) as typeof client.ping
  t.equal(await breaker.call(async (c) => await c.set('k', 'v')), 'OK', 'closed: calls reach Redis')
  t.same(breaker.state, { status: 'up' })

  redis.hang()
  for (let i = 1; i <= THRESHOLD; i++) {
    const { ms, error } = await timed(async () => await breaker.call(async (c) => await c.get('k')))
    t.match(error, { message: /timed out/i }, `call ${i} of a hung Redis times out (${ms.toFixed(0)} ms)`)
    t.ok(ms >= COMMAND_TIMEOUT_MS - 5 && ms < COMMAND_TIMEOUT_MS + 1000, 'after about the command timeout, not longer')
    t.equal(breaker.available, i < THRESHOLD, i < THRESHOLD ? 'still closed' : `open after ${THRESHOLD} timeouts`)
  }
  t.match(breaker.state, { status: 'down', since: Date, error: /timed out/i })
  const opened = lines.filter((l) => /is not answering/.test(l.msg))
  t.equal(opened.length, 1, 'opening is logged once')
  t.equal(opened[0]?.level, 40, 'as a warning')

  let reached = 0
  let late = 0
  for (let i = 0; i < 20; i++) {
    // "At once" without a clock (a loaded machine stalled a refusal 37 ms): settled before the event loop's next
    // turn, so no timer, socket or command timeout was waited on.
    const next = new Promise<'next turn'>((resolve) => setImmediate(() => resolve('next turn')))
    const refusal = breaker.call(async (c) => { reached++; return await c.get('k') }).then(() => undefined, (err: unknown) => err)
    const first = await Promise.race([refusal, next])
    if (first === 'next turn') late++
    t.ok(await refusal instanceof RedisUnavailableError, 'open: RedisUnavailableError')
  }
  t.equal(reached, 0, 'open: no call reaches Redis')
  t.equal(late, 0, `open: each call fails at once, before the event loop's next turn (command timeout ${COMMAND_TIMEOUT_MS} ms)`)

  t.equal(probes, 0, 'no probe on a request\'s path')
  // Still hung: the probe (a PING COOLDOWN_MS after opening, and after each failed one) fails and it stays open.
  await waitFor(() => probes >= 3, 'three probes while Redis is still hung')
  t.equal(breaker.available, false, 'failed probes keep it open')

  redis.resume()
  await waitFor(() => breaker.available, 'a probe to close the breaker once Redis answers', 10_000)
  t.same(breaker.state, { status: 'up' })
  t.equal(await breaker.call(async (c) => await c.get('k')), 'v', 'closed again: calls reach Redis')
  t.equal(lines.filter((l) => /^Redis at \S+ answers again/.test(l.msg)).length, 1, 'closing is logged once')
  t.equal(lines.filter((l) => /is not answering/.test(l.msg)).length, 1, 'and the outage was not logged again meanwhile')
})

t.test('a success resets the count: only consecutive failures open it', { skip }, async (t) => {
  if (!hasRedisServer) return t.fail('redis-server is not on PATH and CI=true')
  const redis = await privateRedis(t)
  await redis.start()
  // Redis answers throughout: a PING timed out at 100 ms once on a loaded machine and failed the test.
  const { breaker } = await breakerFor(t, redis, 10_000)
  // A command Redis refuses is a failure too (the breaker does not tell errors from timeouts).
  const failing = async (): Promise<unknown> => await breaker.call(async (c) => await c.call('NO_SUCH_COMMAND'))
  for (let round = 0; round < 3; round++) {
    for (let i = 1; i < THRESHOLD; i++) await t.rejects(failing(), /unknown command/i)
    t.equal(await breaker.call(async (c) => await c.ping()), 'PONG')
  }
  t.ok(breaker.available, `${3 * (THRESHOLD - 1)} failures, never ${THRESHOLD} in a row: still closed`)
  for (let i = 1; i <= THRESHOLD; i++) await t.rejects(failing())
  t.notOk(breaker.available, `${THRESHOLD} in a row: open`)
})

t.test('Redis down at start: it starts open and a probe closes it; without a client every call fails at once', { skip }, async (t) => {
  if (!hasRedisServer) return t.fail('redis-server is not on PATH and CI=true')
  const redis = await privateRedis(t)
  await redis.start()
  const lines: Line[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Line) } })
  const client = new Redis({ host: '127.0.0.1', port: redis.port, commandTimeout: COMMAND_TIMEOUT_MS, enableOfflineQueue: false })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const breaker = new RedisBreaker({ client, where: 'here', log, failureThreshold: THRESHOLD, cooldownMs: COOLDOWN_MS, startDown: 'no answer within 2000 ms' })
  t.teardown(() => { breaker.close() })
  t.match(breaker.state, { status: 'down', error: 'no answer within 2000 ms' })
  await t.rejects(breaker.call(async (c) => await c.ping()), RedisUnavailableError)
  await waitFor(() => breaker.available, 'the first probe to close it', 10_000)

  const none = new RedisBreaker({ client: null, where: 'none', log, failureThreshold: THRESHOLD, cooldownMs: COOLDOWN_MS })
  t.same(none.state, { status: 'not_configured' })
  await t.rejects(none.call(async () => 'never'), { name: 'RedisUnavailableError', message: /REDIS_URL is not set/ })
})
