import t from 'tap'
import { DatabaseAvailability } from '../../db/availability.js'
import { until } from '../helpers/forwarding.js'

t.test('an outage: one line when it starts, a summary per interval while it lasts, one when it ends', async (t) => {
  const lines: Array<{ level: 'warn' | 'info', obj: Record<string, unknown>, msg: string }> = []
  const log = {
    warn: (obj: Record<string, unknown>, msg: string) => { lines.push({ level: 'warn', obj, msg }) },
    info: (obj: Record<string, unknown>, msg: string) => { lines.push({ level: 'info', obj, msg }) }
  }
  const availability = new DatabaseAvailability({ log: log as never, summaryIntervalMs: 50 })
  t.teardown(() => availability.close())
  const err = new Error('connect ECONNREFUSED 127.0.0.1:5432')

  availability.answered()
  t.same(lines, [], 'nothing to say while PostgreSQL answers')
  t.same(availability.state(), { status: 'up' })

  for (let i = 0; i < 500; i++) availability.refused(err)
  for (let i = 0; i < 7; i++) availability.failed(err)
  t.equal(lines.length, 1, 'one line for 507 failures')
  t.match(lines[0], { level: 'warn', obj: { err }, msg: /PostgreSQL is unavailable/ })
  t.match(availability.state(), { status: 'down', refused: 500 })

  await until(() => lines.length >= 2, 'the first summary')
  t.match(lines[1], { level: 'warn', obj: { refused_requests: 500, failed_statements: 7 }, msg: /500 request\(s\) refused/ })
  availability.refused(err)
  availability.answered()
  const last = lines[lines.length - 1]
  t.match(last, { level: 'info', obj: { refused_requests: 501, failed_statements: 7 }, msg: /PostgreSQL answers again/ })
  t.same(availability.state(), { status: 'up' })
  const count = lines.length
  // A second outage with the same interval as a clock: once it has summed up twice, two intervals have passed.
  const clockLines: unknown[] = []
  const clock = new DatabaseAvailability({ log: { warn: (line: unknown) => { clockLines.push(line) }, info: () => {} } as never, summaryIntervalMs: 50 })
  t.teardown(() => clock.close())
  clock.failed(err)
  await until(() => clockLines.length >= 3, 'two summary intervals')
  t.equal(lines.length, count, 'no summary once it is over')
})

t.test('the answer to a statement sent before the outage began does not end it (it says nothing of recovery)', async (t) => {
  let now = 1_000_000
  const warnings: string[] = []
  const infos: string[] = []
  const availability = new DatabaseAvailability({ log: { warn: (_: unknown, msg: string) => { warnings.push(msg) }, info: (_: unknown, msg: string) => { infos.push(msg) } } as never, now: () => now })
  t.teardown(() => availability.close())
  const sentBefore = now - 5
  availability.failed(new Error('terminating connection due to administrator command'))
  now += 10
  availability.answered(sentBefore)
  t.same(availability.state().status, 'down', 'still down: that statement was sent before the outage')
  t.same(infos, [])
  availability.refused(new Error('connect ECONNREFUSED'))
  t.equal(warnings.length, 1, 'so the next refusal is not a second outage')
  availability.answered(now)
  t.same(availability.state(), { status: 'up' }, 'a statement sent during the outage ends it')
  t.equal(infos.length, 1)
})

t.test('closed (the service shutting down): a lost connection is not reported as an outage', async (t) => {
  const lines: unknown[] = []
  const availability = new DatabaseAvailability({ log: { warn: (line: unknown) => { lines.push(line) }, info: (line: unknown) => { lines.push(line) } } as never })
  availability.close()
  availability.failed(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))
  t.same(lines, [], 'nothing logged')
  t.same(availability.state(), { status: 'up' })
})
