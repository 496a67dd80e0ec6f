import t from 'tap'
import { REDIS_URL, build, seedEvent, sqlClient, uid } from '../helpers/app.js'

t.test('live, ready and summary when everything is up', async (t) => {
  const app = await build(t)
  const live = await app.inject('/health/live')
  t.equal(live.statusCode, 200)
  t.match(live.json(), { status: 'ok', uptime_seconds: Number })
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  const redis = REDIS_URL !== undefined ? { status: 'up' } : { status: 'not_configured' }
  t.match(ready.json(), { status: 'ready', checks: { database: { status: 'up' }, redis } })
  const summary = await app.inject('/health')
  t.equal(summary.statusCode, 200)
  t.match(summary.json(), { status: 'ok', checks: { database: { status: 'up' }, redis }, ingestion: { queued: 0, writing: 0 } })
  // The tests run against DATABASE_URL (testConfig sets it): the summary names its host, never its password.
  const { host, port, pathname } = new URL(app.config.DATABASE_URL as string)
  t.same(summary.json().database, { type: 'external', description: `PostgreSQL at ${host.replace(/:\d+$/, '')}:${port !== '' ? port : '5432'}/${pathname.slice(1)}` })
})

t.test('Redis down: still ready (it is optional), the body says so and what stands in; ingestion keeps working', { skip: REDIS_URL === undefined && 'no Redis for this run' }, async (t) => {
  const app = await build(t)
  app.redis.client?.disconnect()
  const ready = await app.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  t.match(ready.json(), { status: 'ready', checks: { database: { status: 'up' }, redis: { status: 'down', error: String, fallback: /in-process/ } } })
  t.equal((await app.inject('/health/live')).statusCode, 200, 'liveness does not depend on Redis')
  t.equal((await app.inject('/health')).json().status, 'degraded')
  const res = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(seedEvent()) })
  t.equal(res.statusCode, 202, 'PostgreSQL alone is enough to accept events')
})

t.test('Prometheus metrics: requests, events by source and outcome, backlog', async (t) => {
  const app = await build(t)
  const post = (url: string, body: unknown) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })
  const event = seedEvent()
  await post('/webhooks/litellm', event)
  await post('/webhooks/litellm', event)
  await post('/webhooks/litellm', seedEvent({ tokens_input: -1 }))
  await post('/webhooks/litellm/batch', [seedEvent(), seedEvent(), { bad: true }])

  const res = await app.inject('/health/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain/)
  const text = res.body
  t.match(text, /usage_events_total\{source="webhook",outcome="accepted"\} 1\b/)
  t.match(text, /usage_events_total\{source="webhook",outcome="duplicate"\} 1\b/)
  t.match(text, /usage_events_total\{source="webhook",outcome="rejected"\} 1\b/)
  t.match(text, /usage_events_total\{source="webhook_batch",outcome="accepted"\} 2\b/)
  t.match(text, /usage_events_total\{source="webhook_batch",outcome="rejected"\} 1\b/)
  t.match(text, /http_request_duration_seconds_count\{method="POST",route="\/webhooks\/litellm",status_code="202"\} 1\b/)
  t.match(text, /usage_events_unsent \d+/)
  t.match(text, /usage_events_oldest_unsent_age_seconds [\d.]+/)
  t.match(text, /process_cpu_user_seconds_total/)
})

t.test('stats: totals, last 24 h, per source, oldest pending, rate; an API key is required', async (t) => {
  const app = await build(t, { API_KEYS: 'stats-key' })
  const db = await sqlClient(t)
  const stats = () => app.inject({ url: '/webhooks/stats', headers: { authorization: 'Bearer stats-key' } })
  t.equal((await app.inject('/webhooks/stats')).statusCode, 401)
  t.equal((await app.inject({ url: '/webhooks/stats', headers: { authorization: 'Bearer nope' } })).statusCode, 401)
  // This file's database is shared by its tests: measure the change this test makes.
  const before = (await stats()).json()
  const post = (url: string, body: unknown) => app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) })
  const single = Array.from({ length: 3 }, () => seedEvent())
  for (const e of single) await post('/webhooks/litellm', e)
  await post('/webhooks/litellm/batch', [seedEvent(), seedEvent()])
  const old = seedEvent()
  await post('/webhooks/litellm', old)
  await db.query('UPDATE litellm_usage_events SET received_at = now() - interval \'2 days\', status = \'dead\' WHERE request_id = $1', [old.request_id])
  await db.query('UPDATE litellm_usage_events SET status = \'forwarded\', processed_at = now() WHERE request_id = $1', [single[0].request_id])
  await db.query('UPDATE litellm_usage_events SET status = \'failed\' WHERE request_id = $1', [single[1].request_id])

  const res = await stats()
  t.equal(res.statusCode, 200)
  const now = res.json()
  const delta = (now: Record<string, number>, then: Record<string, number> | undefined) =>
    Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (then?.[k] ?? 0)]))
  t.same(delta(now.totals, before.totals), { received: 6, pending: 3, failed: 1, forwarded: 1, dead: 1, unmapped: 0, not_billable: 0, lago_error: 0 })
  t.same(delta(now.last_24h, before.last_24h), { received: 5, pending: 3, failed: 1, forwarded: 1, dead: 0, unmapped: 0, not_billable: 0, lago_error: 0 })
  t.same(delta(now.by_source.webhook_batch, before.by_source.webhook_batch), { received: 2, pending: 2, failed: 0, forwarded: 0, dead: 0, unmapped: 0, not_billable: 0, lago_error: 0 })
  t.same(delta(now.by_source.webhook, before.by_source.webhook), { received: 4, pending: 1, failed: 1, forwarded: 1, dead: 1, unmapped: 0, not_billable: 0, lago_error: 0 })
  t.type(now.oldest_pending_age_seconds, 'number')
  t.ok(now.events_per_second_last_minute > 0)
  t.match(now.generated_at, /^\d{4}-\d\d-\d\dT/)
})

t.test('request ids: an upstream x-request-id is echoed, else one is made', async (t) => {
  const app = await build(t)
  const given = await app.inject({ url: '/health/live', headers: { 'x-request-id': uid('trace') } })
  t.match(given.headers['x-request-id'], /^trace-/)
  const made = await app.inject('/health/live')
  t.ok(made.headers['x-request-id'])
})
