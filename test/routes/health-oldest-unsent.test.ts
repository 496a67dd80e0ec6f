import t from 'tap'
import { build, sqlClient, uid } from '../helpers/app.js'

const HOUR = 3_600_000

// The gauge is of every organization: the oldest of each organization's first unsent event. A file of its own, so
// that no other test's events are in its database.
t.test('usage_events_oldest_unsent_age_seconds and usage_events_unsent: of every organization; sent and dead ones never count', async (t) => {
  const app = await build(t, { FORWARDER_ENABLED: 'false' })
  const db = await sqlClient(t)
  const [a, b] = [uid('org-a').toLowerCase(), uid('org-b').toLowerCase()]
  await db.query('INSERT INTO organizations (id, name) VALUES ($1, $1), ($2, $2)', [a, b])
  const now = Date.now()
  const event = async (organization: string, status: string, hoursAgo: number): Promise<number> => {
    const { rows: [r] } = await db.query<{ id: string }>(`
      INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, "timestamp", source, fingerprint, status, received_at)
      VALUES ($1, $2, 'cus', 'gpt-4o', 'openai', now(), 'test', 'fp', $3, $4) RETURNING id`, [organization, uid(), status, new Date(now - hoursAgo * HOUR)])
    return Number(r.id)
  }
  const metric = async (name: string): Promise<number> => {
    const res = await app.inject('/health/metrics')
    t.equal(res.statusCode, 200)
    const match = new RegExp(`^${name} ([\\d.]+)$`, 'm').exec(res.body)
    if (match === null) throw new Error(`no ${name} in /health/metrics`)
    return Number(match[1])
  }
  const gauge = async (): Promise<number> => await metric('usage_events_oldest_unsent_age_seconds')
  const unsent = async (): Promise<number> => await metric('usage_events_unsent')
  // The expected ages, from the times written above (a second or two pass between writing and reading).
  const near = (seconds: number, hours: number, what: string): void => {
    const expected = (Date.now() - (now - hours * HOUR)) / 1000
    t.ok(Math.abs(seconds - expected) < 30, `${what}: ${seconds} s, expected ${expected.toFixed(0)} s`)
  }

  t.equal(await gauge(), 0, 'nothing waits: 0')
  t.equal(await unsent(), 0)
  await event(a, 'forwarded', 5)
  const first = await event(a, 'pending', 1)
  const second = await event(b, 'failed', 3)
  await event(b, 'dead', 7)
  near(await gauge(), 3, 'the failed event of the second organization, 3 hours old')
  t.equal(await unsent(), 2, 'unsent: the pending one and the failed one')
  await db.query('UPDATE litellm_usage_events SET status = \'forwarded\' WHERE id = $1', [second])
  near(await gauge(), 1, 'once it is sent: the first organization\'s pending one, 1 hour old')
  t.equal(await unsent(), 1)
  await db.query('UPDATE litellm_usage_events SET status = \'forwarded\' WHERE id = $1', [first])
  t.equal(await gauge(), 0, 'everything sent: 0')
  t.equal(await unsent(), 0)
})
