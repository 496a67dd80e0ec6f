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

t.test('ingestion first: one batch in flight while ingestion writes, several once it has stopped', async (t) => {
  const { app, sim } = await buildForwarding(t, { FORWARDER_CONCURRENCY: '4' })
  const db = await sqlClient(t)
  // Every send takes 100 ms: two sends that arrive less than that apart were in flight together.
  sim.faults.chaos({ seed: 1, route: BATCH, probabilities: { delay: 1 }, delayMs: 100 })
  const customer = uid('first')
  const since = sim.requests.total
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
