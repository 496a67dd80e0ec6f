import t from 'tap'
import { seedEvent, sqlClient, uid } from '../../../helpers/app.js'
import { buildForwarding, ingest, statusCounts, until } from '../../../helpers/forwarding.js'
import { IngestionActivity } from '../../../../plugins/app/forwarder/ingestion-activity.js'

const BATCH = '/api/v1/events/batch'

t.test('ingestion activity: writing for the window after each commit, by the injected clock', async (t) => {
  let now = 1_000
  const activity = new IngestionActivity(1000, () => now)
  t.equal(activity.writing, false, 'nothing committed yet')
  activity.committed()
  now += 999
  t.equal(activity.writing, true, '999 ms after a commit')
  now += 1
  t.equal(activity.writing, false, 'a second after it')
  activity.committed()
  t.equal(activity.writing, true)
})

t.test('ingestion activity: the forwarder pause grows while ingestion latency is above its base, and shrinks back', async (t) => {
  let now = 1_000
  const activity = new IngestionActivity(1000, () => now)
  // Ingestion committing 10 events every 50 ms, each having waited `ms` on average, for `windows` windows of 250 ms.
  const run = (ms: number, windows: number): void => {
    for (let i = 0; i < windows * 5; i++) {
      activity.committed(10, ms)
      now += 50
    }
  }
  t.equal(activity.nextPauseMs(), 0, 'no commit yet: no pause')
  run(4, 1)
  t.equal(activity.nextPauseMs(), 0, 'one window: no base yet')
  run(4, 8)
  t.match(activity.latency(), { recentMs: 4, baseMs: 4 })
  t.equal(activity.nextPauseMs(), 0, 'at its base')
  // Base 4 ms: slowed above 4 * 1.5 + 2 = 8 ms.
  run(8, 1)
  t.equal(activity.nextPauseMs(), 0, '8 ms is not slowed')
  // One step per window: a window of `ms`, then the pause.
  const step = (ms: number): number => { run(ms, 1); return activity.nextPauseMs() }
  t.equal(step(8.5), 10, 'slowed: 10 ms')
  t.same([activity.nextPauseMs(), activity.nextPauseMs()], [10, 10], 'asked again within the same window: unchanged')
  // Doubling from 10 ms, by hand: 20, 40, 80, 160, 320, 640, then the 1,000 ms cap.
  t.same(Array.from({ length: 8 }, () => step(8.5)), [20, 40, 80, 160, 320, 640, 1000, 1000], 'doubled up to 1 s while slowed')
  // Halved from 1,000 ms: 500, 250, 125, 62.5, 31.25, 15.625, 7.8125, then under 5 ms: none.
  t.same(Array.from({ length: 9 }, () => step(5)), [500, 250, 125, 62.5, 31.25, 15.625, 7.8125, 0, 0], 'halved back to none once it is not')
  run(20, 1)
  t.equal(activity.nextPauseMs(), 10, 'slowed again')
  now += 1000
  t.equal(activity.nextPauseMs(), 0, 'ingestion stopped writing: no pause')
  // The base is the least window of the last ten seconds: after ten seconds at 20 ms, 20 ms is the base.
  run(20, 41)
  t.match(activity.latency(), { recentMs: 20, baseMs: 20 }, 'older windows forgotten')
  t.equal(activity.nextPauseMs(), 0)
})

t.test('ingestion first: one batch in flight while ingestion writes, several once it has stopped', async (t) => {
  const { app, sim } = await buildForwarding(t, { FORWARDER_CONCURRENCY: '4' })
  const db = await sqlClient(t)
  // Every send takes 100 ms: two sends that arrive less than that apart were in flight together.
  sim.faults.chaos({ seed: 1, route: BATCH, probabilities: { delay: 1 }, delayMs: 100 })
  const customer = uid('first')
  const since = sim.requests.total - 1 // the seq of the last request so far: entries() gives those after it
  const sends = (from: number, to = Infinity): number[] => sim.requests.entries({ since, route: BATCH })
    .map((r) => Date.parse(r.at)).filter((at) => at >= from && at <= to).sort((a, b) => a - b)
  const gaps = (ats: number[]): number[] => ats.slice(1).map((at, i) => at - ats[i])

  // Ingestion keeps writing (an event every 150 ms, paced like a quiet gateway) while a backlog of 30 batches drains.
  const state = { writing: true }
  let trickled = 0
  const trickle = (async () => {
    while (state.writing) {
      const res = await app.inject({ method: 'POST', url: '/webhooks/litellm', payload: seedEvent({ customer_id: customer }) })
      if (res.statusCode === 202) trickled++
      await new Promise((resolve) => setTimeout(resolve, 150))
    }
  })()
  t.equal(await ingest(app, Array.from({ length: 3000 }, () => seedEvent({ customer_id: customer }))), 3000)
  const ingesting = Date.now()
  // (A worker that passed its check just before the first commit may still be finishing: the first 300 ms aside.)
  await until(() => sends(ingesting + 300).length >= 6, 'six batches sent while ingestion writes')
  state.writing = false
  await trickle
  const stopped = Date.now()
  const whileIngesting = gaps(sends(ingesting + 300, stopped))
  t.ok(whileIngesting.length >= 5 && whileIngesting.every((gap) => gap >= 95), `one at a time while ingesting: ${whileIngesting.join(', ')} ms between sends`)

  await until(async () => (await statusCounts(db, customer)).forwarded === 3000 + trickled, 'every event forwarded')
  // A second after the last commit, the other workers join in.
  const after = gaps(sends(stopped + 1100))
  t.ok(after.some((gap) => gap < 50), `several at once after: ${after.join(', ')} ms between sends`)
})
