import t from 'tap'
import { UsageEventWriter, isDataError } from '../../../../plugins/app/usage-events/writer.js'
import type { UsageEvent } from '../../../../plugins/app/usage-events/normalize.js'
import type { WriteOutcome } from '../../../../plugins/app/usage-events/repository.js'

const event = (requestId: string): UsageEvent => ({
  requestId,
  customerExternalId: 'c',
  model: 'm',
  provider: 'p',
  eventType: 'usage',
  tokensInput: 1,
  tokensOutput: 1,
  totalTokens: 2,
  costUsd: '0.1',
  apiKeyHash: null,
  timestamp: new Date(),
  source: 'test',
  fingerprint: requestId,
  metadata: {}
})

/** A write that completes when told to, recording what each call held. */
function controlledWrite () {
  const calls: Array<{ events: UsageEvent[], finish: (err?: Error) => void }> = []
  const write = async (events: UsageEvent[]): Promise<WriteOutcome[]> => await new Promise((resolve, reject) => {
    calls.push({ events, finish: (err) => err ? reject(err) : resolve(events.map((_, i) => ({ status: 'accepted', id: i }))) })
  })
  return { calls, write }
}
const tick = () => new Promise((resolve) => setImmediate(resolve))

t.test('requests that arrive while writes are in flight share the next write', async (t) => {
  const { calls, write } = controlledWrite()
  const committed: number[] = []
  const writer = new UsageEventWriter({ write, maxBatchRows: 100, maxConcurrentWrites: 1, lingerMs: 0, onCommitted: (n) => committed.push(n) })
  const first = writer.submit([event('a')])
  await tick()
  t.equal(calls.length, 1)
  const rest = Array.from({ length: 10 }, (_, i) => writer.submit([event(`b${i}`)]))
  await tick()
  t.equal(calls.length, 1, 'no second write while the first is in flight')
  t.same(writer.backlog, { queued: 10, writing: 1 })
  calls[0].finish()
  t.same(await first, [{ status: 'accepted', id: 0 }])
  await tick()
  t.equal(calls.length, 2)
  t.equal(calls[1].events.length, 10, 'the ten waiting requests go in one write')
  calls[1].finish()
  t.equal((await Promise.all(rest)).length, 10)
  t.same(committed, [1, 10])
})

t.test('a write is capped at maxBatchRows and writes run up to the concurrency limit', async (t) => {
  const { calls, write } = controlledWrite()
  const writer = new UsageEventWriter({ write, maxBatchRows: 3, maxConcurrentWrites: 2, lingerMs: 0 })
  const all = writer.submit(Array.from({ length: 8 }, (_, i) => event(`e${i}`)))
  await tick(); await tick()
  t.same(calls.map((c) => c.events.length), [3, 3], 'two writes of three in flight')
  calls[0].finish(); await tick(); await tick()
  t.same(calls.map((c) => c.events.length), [3, 3, 2])
  calls[1].finish(); calls[2].finish()
  t.equal((await all).length, 8)
})

t.test('a failed write fails exactly the requests in it; close drains and then refuses', async (t) => {
  const { calls, write } = controlledWrite()
  const writer = new UsageEventWriter({ write, maxBatchRows: 100, maxConcurrentWrites: 1, lingerMs: 0 })
  const doomed = writer.submit([event('x')])
  await tick()
  const later = writer.submit([event('y')])
  calls[0].finish(new Error('connection lost'))
  await t.rejects(doomed, /connection lost/)
  await tick()
  const closing = writer.close()
  calls[1].finish()
  t.same(await later, [{ status: 'accepted', id: 0 }], 'queued work is finished before close resolves')
  await closing
  await t.rejects(writer.submit([event('z')]), { name: 'WriterClosedError', code: 'shutting_down', statusCode: 503 })
})

/** A write that fails the way PostgreSQL does when a row holds a NUL (SQLSTATE 22021), for any batch holding one. */
function poisonableWrite (err: () => Error) {
  const sizes: number[] = []
  const write = async (events: UsageEvent[]): Promise<WriteOutcome[]> => {
    sizes.push(events.length)
    if (events.some((e) => e.requestId.startsWith('bad'))) throw err()
    return events.map((_, i) => ({ status: 'accepted', id: i }))
  }
  return { sizes, write }
}
const pgError = (code: string, message: string): Error => Object.assign(new Error(message), { code })

t.test('a write failing for a data reason is split until only the bad events fail', async (t) => {
  const { sizes, write } = poisonableWrite(() => pgError('22021', 'invalid byte sequence for encoding "UTF8": 0x00'))
  const unstorable: string[] = []
  const writer = new UsageEventWriter({ write, maxBatchRows: 100, maxConcurrentWrites: 1, lingerMs: 5, onUnstorable: (e) => unstorable.push(e.requestId) })
  const requests = Array.from({ length: 32 }, (_, i) => writer.submit([event(i === 9 || i === 20 ? `bad${i}` : `ok${i}`)]))
  const outcomes = (await Promise.all(requests)).map(([o]) => o.status)
  t.same(outcomes, outcomes.map((_, i) => i === 9 || i === 20 ? 'rejected' : 'accepted'), 'the two bad events alone are rejected')
  t.same(unstorable.sort(), ['bad20', 'bad9'])
  t.equal(sizes[0], 32, 'one group commit first')
  t.ok(sizes.length <= 1 + 2 * 2 * Math.log2(32), `bisected, not retried row by row (${sizes.length} writes)`)
})

t.test('an unavailable database fails the whole write (a 503 for all), never split', async (t) => {
  const { sizes, write } = poisonableWrite(() => pgError('57P01', 'terminating connection due to administrator command'))
  const writer = new UsageEventWriter({ write, maxBatchRows: 100, maxConcurrentWrites: 1, lingerMs: 5 })
  const requests = Array.from({ length: 8 }, (_, i) => writer.submit([event(i === 3 ? 'bad' : `ok${i}`)]))
  const settled = await Promise.allSettled(requests)
  t.ok(settled.every((s) => s.status === 'rejected'), 'every request fails')
  t.same(sizes, [8], 'written once, not split')
})

t.test('check refuses an event before it joins a write', async (t) => {
  const { calls, write } = controlledWrite()
  const writer = new UsageEventWriter({ write, maxBatchRows: 100, maxConcurrentWrites: 1, lingerMs: 0, check: (e) => e.model.includes('\u0000') ? { field: '/model', message: 'holds a NUL' } : undefined })
  const answer = writer.submit([{ ...event('a'), model: 'm\u0000' }, event('b')])
  await tick()
  t.same(calls[0].events.map((e) => e.requestId), ['b'], 'only the valid event is written')
  calls[0].finish()
  t.same(await answer, [{ status: 'rejected', field: '/model', message: 'holds a NUL' }, { status: 'accepted', id: 0 }])
})

t.test('isDataError: what the rows hold, never an unavailable database or a bug', async (t) => {
  const cases: Array<[unknown, boolean, string]> = [
    [pgError('22021', 'invalid byte sequence for encoding "UTF8": 0x00'), true, 'NUL in text'],
    [pgError('22P05', 'unsupported Unicode escape sequence'), true, 'NUL or lone surrogate in jsonb'],
    [pgError('23514', 'violates check constraint'), true, 'a CHECK'],
    [pgError('54000', 'index row size exceeds maximum'), true, 'an index row too large'],
    [new RangeError('Invalid time value'), true, 'an invalid Date'],
    [pgError('57P01', 'terminating connection due to administrator command'), false, 'admin shutdown'],
    [pgError('ECONNREFUSED', 'connect ECONNREFUSED'), false, 'connection refused'],
    [new Error('Connection terminated unexpectedly'), false, 'connection lost'],
    [pgError('40P01', 'deadlock detected'), false, 'a deadlock'],
    [new TypeError('x is undefined'), false, 'a bug']
  ]
  for (const [err, expected, what] of cases) t.equal(isDataError(err), expected, what)
})
