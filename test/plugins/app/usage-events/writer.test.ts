import t from 'tap'
import { UsageEventWriter } from '../../../../plugins/app/usage-events/writer.js'
import type { UsageEvent } from '../../../../plugins/app/usage-events/normalize.js'
import type { WriteOutcome } from '../../../../plugins/app/usage-events/repository.js'

const event = (requestId: string): UsageEvent => ({
  requestId, customerExternalId: 'c', model: 'm', provider: 'p', eventType: 'usage', tokensInput: 1, tokensOutput: 1,
  totalTokens: 2, costUsd: '0.1', apiKeyHash: null, timestamp: new Date(), source: 'test', fingerprint: requestId, metadata: {}
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
