import t from 'tap'
import { sqlClient, uid } from '../../../helpers/app.js'
import { ingest, until } from '../../../helpers/forwarding.js'
import { buildTwoOrganizations, eachOnce, eventsOf, heldBy, ingestAs, organizationCounts, storeFor, twoOrganizationsForwarding } from '../../../helpers/organizations.js'
import { dueEvents } from '../../../../plugins/app/forwarder/repository.js'
import { PIN_INDEX_PLAN } from '../../../../db/plans.js'

// Long scenarios of forwarding with two organizations (slow lane): an outage of one organization's Lago, and
// fairness under a large backlog.

const BATCH = '/api/v1/events/batch'

t.test('B\'s Lago down leaves A forwarding; B\'s events wait without spending attempts and go exactly once when it returns', async (t) => {
  const { app, simA, simB, b, tokenB, db, cusA, cusB, countsA, countsB } = await twoOrganizationsForwarding(t, { MAX_ATTEMPTS: '2' })

  simB.faults.outage(10 * 60_000, 'drop') // down until cleared below
  const ofB = eventsOf(cusB, 150)
  await ingestAs(app, tokenB, ofB)
  await until(async () => (await app.inject('/health')).json().organizations.find((o: { id: string }) => o.id === b)?.forwarder.status === 'lago_unavailable', 'B paused')

  // A at full speed meanwhile: several batches, none of them waiting on B.
  const ofA = eventsOf(cusA, 500)
  await ingest(app, ofA)
  await until(async () => (await countsA()).forwarded === 501, 'A forwarded while B is down')
  t.ok(eachOnce(simA, ofA))
  const during = await countsB()
  t.notOk(during.dead, 'no dead letters in B, even with MAX_ATTEMPTS=2')
  t.equal(during.forwarded, 1, 'B waits')

  simB.faults.clear()
  await until(async () => (await countsB()).forwarded === 151, 'B catches up after its Lago returns', 30_000)
  t.ok(eachOnce(simB, ofB), 'each of B\'s events exactly once in B\'s Lago')
  t.equal(heldBy(simA, ofB), 0)
  const maxAttempts = (await db.query('SELECT max(attempts)::int AS a FROM litellm_usage_events WHERE organization_id = $1', [b])).rows[0].a
  t.ok(maxAttempts <= 2, `the outage cost at most the one failed send per event (${maxAttempts})`)
})

t.test('fairness: a large backlog in A delays B\'s new events by at most one of A\'s batches', async (t) => {
  // One worker, so that the order of sends is the order of turns; A's Lago takes a while per batch.
  const { app, simA, simB, tokenB } = await buildTwoOrganizations(t, { FORWARDER_CONCURRENCY: '1', FORWARDER_BATCH_SIZE: '100' })
  const db = await sqlClient(t)
  simA.faults.delayNext(Infinity, 150, { route: `POST ${BATCH}` })
  const cusA = uid('cus-a')
  const backlog = eventsOf(cusA, 5000)
  await storeFor(db, 'default', backlog)
  await until(() => simA.requests.entries({ route: BATCH }).length >= 3, 'A\'s backlog being forwarded')

  const storedAt = Date.now()
  const ofB = eventsOf(uid('cus-b'), 30)
  await ingestAs(app, tokenB, ofB)
  await until(() => heldBy(simB, ofB) === 30, 'B\'s events in B\'s Lago')
  const firstOfB = simB.requests.entries({ route: BATCH }).find((r) => r.status === 200)
  t.ok(firstOfB !== undefined)
  const bSentAt = Date.parse(firstOfB?.at ?? '')
  // A's batches started after B's events were stored and before B's batch went out.
  const aBetween = simA.requests.entries({ route: BATCH }).filter((r) => Date.parse(r.at) > storedAt && Date.parse(r.at) < bSentAt).length
  t.ok(aBetween <= 1, `at most one of A's batches went before B's (${aBetween})`)
  const unsentA = (await organizationCounts(db, 'default', [cusA])).pending ?? 0
  t.ok(unsentA > 1000, `B did not wait for A's backlog (${unsentA} of A's events still waiting)`)
  t.ok(eachOnce(simB, ofB))
  // B's events were sent while B's customer was provisioned in B's Lago, not A's.
  t.equal(heldBy(simA, ofB), 0)
})

t.test('the claim of one organization reads its own part of the queue (index), whatever another\'s backlog', async (t) => {
  const { app, b } = await buildTwoOrganizations(t, { FORWARDER_ENABLED: 'false' })
  const db = await sqlClient(t)
  // A realistic backlog: 300 000 of A's events waiting, a few of B's.
  await db.query(`
    INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, "timestamp", source, fingerprint)
    SELECT 'default', 'backlog-' || g, 'cus-' || (g % 1000), 'gpt-4o', 'openai', now(), 'test', md5(g::text) FROM generate_series(1, 300000) g`)
  await storeFor(db, b, eventsOf(uid('cus-b'), 10))
  await db.query('ANALYZE litellm_usage_events')

  // Explained as the claim runs it: in a transaction with PIN_INDEX_PLAN (month partitions: per-month index names).
  const pin = PIN_INDEX_PLAN.compile(app.db)
  const explain = async (organization: string, options: string): Promise<string> => {
    const compiled = dueEvents(organization, 100).compile(app.db)
    await db.query('BEGIN')
    try {
      await db.query(pin.sql, [...pin.parameters])
      const { rows } = await db.query(`EXPLAIN (${options}, FORMAT JSON) ${compiled.sql}`, [...compiled.parameters])
      return JSON.stringify(rows[0]['QUERY PLAN'])
    } finally {
      await db.query('ROLLBACK')
    }
  }
  const plan = await explain(b, 'ANALYZE, BUFFERS')
  t.match(plan, /litellm_usage_events_y\d{4}m\d{2}_organization_id_id_idx/, 'the claim scans the per-organization index of unsent events')
  t.notMatch(plan, /Seq Scan/, 'never the whole table')
  const rowsRead = Math.max(...[...plan.matchAll(/"Actual Rows":(\d+)/g)].map((m) => Number(m[1])))
  t.ok(rowsRead <= 10, `only B's own rows are read (${rowsRead}), not A's 300 000`)
  t.comment(`B's claim against A's backlog of 300 000: ${/"Execution Time":([\d.]+)/.exec(plan)?.[1] ?? '?'} ms`)

  const aPlan = await explain('default', 'ANALYZE')
  // Even for the organization holding nearly every row: the one index of unsent events (migration 2000 dropped the
  // global one by id).
  t.match(aPlan, /"Index Name":"litellm_usage_events_y\d{4}m\d{2}_organization_id_id_idx"/, 'A\'s claim walks the index of unsent events')
  t.notMatch(aPlan, /"Node Type":"Sort"/, 'the oldest 100 in index order: no sort of the backlog')
  t.notMatch(aPlan, /Seq Scan/)
})
