import { randomBytes } from 'node:crypto'
import t from 'tap'
import type pg from 'pg'
import { sql } from 'kysely'
import { build, seedEvent, sqlClient, uid } from '../../helpers/app.js'
import { apiClient } from '../../helpers/api.js'
import { serviceWithSecondOrganization } from '../../helpers/organizations.js'
import { postGeneric } from '../../helpers/litellm.js'
import { ORGANIZATION_TABLES } from '../../../plugins/app/organizations/repository.js'
import { insertUsageEvents } from '../../../plugins/app/usage-events/repository.js'
import { fromLiteLLMEvent, type UsageEvent } from '../../../plugins/app/usage-events/normalize.js'
import { simulateCall, standardLoggingPayload } from '../../../scripts/litellm-simulator/index.js'
import { claimDueEvents } from '../../../plugins/app/forwarder/repository.js'
import { until } from '../../helpers/forwarding.js'

// Deleting an organization: only once disabled, all its rows or none, its credentials refused afterwards.
const ADMIN = 'admin-key-' + randomBytes(6).toString('hex')
const KEY_A = 'service-key-a-' + randomBytes(6).toString('hex')

/** Whether a statement of this database whose text holds `statement` waits on a lock (pg_stat_activity: its first 1 kB). */
async function waitingOnLock (db: pg.Client, statement: string): Promise<boolean> {
  return (await db.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND query ILIKE $1", [`%${statement}%`])).rows[0].n > 0
}

/**
 * Starts the purge of an organization and holds it once it has locked the organization (the last table it deletes
 * from is locked by another session); `release` lets it finish.
 */
async function purgeHeldAfterItsLock (t: Parameters<typeof sqlClient>[0], db: pg.Client, admin: ReturnType<typeof apiClient>, id: string): Promise<{ purge: ReturnType<ReturnType<typeof apiClient>['delete']>, release: () => Promise<void> }> {
  const holder = await sqlClient(t)
  await holder.query('BEGIN')
  await holder.query('LOCK TABLE organization_routes IN SHARE MODE')
  const purge = admin.delete(`/api/organizations/${id}`)
  await until(async () => await waitingOnLock(db, 'DELETE FROM "organization_routes"'), 'the purge holding its organization')
  return { purge, release: async () => { await holder.query('COMMIT') } }
}

t.test('every table with an organization_id column is purged with it (none forgotten)', async (t) => {
  const db = await sqlClient(t)
  await build(t, { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', API_KEYS: KEY_A }) // migrated
  // Tables (a partitioned one once, not its partitions) with the column, whether or not a foreign key says so.
  const { rows } = await db.query(`
    SELECT c.relname AS t
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE a.attname = 'organization_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND n.nspname = current_schema()
       AND NOT c.relispartition`)
  t.same(rows.map((r: { t: string }) => r.t).sort(), [...ORGANIZATION_TABLES].sort())
})

t.test('a disabled organization is deleted with every row it owns; its token and key are refused after, even with open ingestion', async (t) => {
  const id = `gone-${randomBytes(3).toString('hex')}`
  // Ingestion open (WEBHOOK_AUTH=none): a deleted organization's token must still be refused, never fall to default.
  const { app, admin, simB, created, tokenB, keyB } = await serviceWithSecondOrganization(t, { admin: ADMIN, keyA: KEY_A, tokenA: '' }, id,
    { env: { WEBHOOK_AUTH: 'none' }, name: 'Gone Ltd' })
  const db = await sqlClient(t)
  t.equal(created.statusCode, 201)
  const ingest = async (token: string | null, requestId: string) => await app.inject({
    method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json', ...(token !== null ? { authorization: `Bearer ${token}` } : {}) }, payload: seedEvent({ request_id: requestId })
  })

  // Rows in B: events, a mapping, a route (routes calls of a team to B), and in default: an event of its own.
  const requestA = uid('req-a')
  t.equal((await ingest(null, requestA)).statusCode, 202)
  for (const r of [uid('req-b'), uid('req-b')]) t.equal((await ingest(tokenB, r)).statusCode, 202)
  t.equal((await apiClient(app, keyB).post('/api/customer-mappings', { identity: 'team', value: 't', customer_id: 'c' })).statusCode, 201)
  const team = uid('team')
  t.equal((await admin.post('/api/organization-routes', { identity: 'team', value: team, organization_id: id })).statusCode, 201)
  const owned = async (): Promise<Record<string, number>> => Object.fromEntries(await Promise.all(ORGANIZATION_TABLES.map(async (table) =>
    [table, (await db.query(`SELECT count(*)::int AS n FROM ${table} WHERE organization_id = $1`, [id])).rows[0].n as number])))
  const before = await owned()
  t.match(before, { litellm_usage_events: 2, customer_mappings: 1, api_keys: 1, ingestion_tokens: 1, organization_routes: 1 })

  // Active: refused, nothing deleted. default and unrouted: never. Unknown: 404.
  t.match((await admin.delete(`/api/organizations/${id}`)).json(), { statusCode: 409, code: 'organization_active', message: /disable it first/ })
  t.same(await owned(), before, 'nothing deleted')
  t.match((await admin.delete('/api/organizations/default')).json(), { statusCode: 409, code: 'organization_protected' })
  t.match((await admin.delete('/api/organizations/unrouted')).json(), { statusCode: 409, code: 'organization_protected' })
  t.match((await admin.delete('/api/organizations/nope')).json(), { statusCode: 404, code: 'organization_not_found' })
  t.match((await apiClient(app, KEY_A).delete(`/api/organizations/${id}`)).json(), { statusCode: 403, code: 'admin_required' })

  t.equal((await admin.post(`/api/organizations/${id}/disable`)).statusCode, 200)
  const deleted = await admin.delete(`/api/organizations/${id}`)
  t.equal(deleted.statusCode, 200, deleted.body)
  t.same(deleted.json(), { id, deleted_rows: before }, 'the rows deleted, per table')
  t.same(Object.values(await owned()).filter((n) => n > 0), [], 'none of its rows left')
  t.equal((await db.query('SELECT count(*)::int AS n FROM organizations WHERE id = $1', [id])).rows[0].n, 0)
  t.same((await db.query('SELECT organization_id FROM litellm_usage_events WHERE request_id = $1', [requestA])).rows, [{ organization_id: 'default' }], 'default\'s rows untouched')

  // Afterwards: 404; its token refused (never stored under default, although ingestion is open), its key refused.
  t.equal((await admin.get(`/api/organizations/${id}`)).statusCode, 404)
  const late = uid('req-late')
  const refused = await ingest(tokenB, late)
  t.equal(refused.statusCode, 401)
  t.match(refused.json(), { message: /Unknown ingestion token/ })
  t.same((await db.query('SELECT 1 FROM litellm_usage_events WHERE request_id = $1', [late])).rows, [], 'stored nowhere')
  t.equal((await apiClient(app, keyB).get('/api/customer-mappings')).statusCode, 401)
  t.equal((await ingest('not-a-token', uid('req'))).statusCode, 202, 'open ingestion still takes other callers')
  // Its route went with it: the team's calls are default's again (no route left in this file's database).
  const call = standardLoggingPayload(simulateCall({ team }))
  t.equal((await postGeneric(app, [call], {})).statusCode, 202)
  t.same((await db.query('SELECT organization_id FROM litellm_usage_events WHERE request_id = $1', [call.litellm_call_id])).rows, [{ organization_id: 'default' }])

  // The id can be used again: a new organization, with nothing of the old one.
  const again = await admin.post('/api/organizations', { id, name: 'New Ltd', lago_api_url: simB.url, lago_api_key: 'lago-key-b' })
  t.equal(again.statusCode, 201)
  t.equal((await apiClient(app, again.json().api_key).get('/api/customer-mappings')).json().total, 0)
})

t.test('a claim in flight when its organization is purged: the purge waits for it, then deletes its claims too', async (t) => {
  const id = `racing-${randomBytes(3).toString('hex')}`
  const db = await sqlClient(t)
  // Whatever the database's default isolation: under repeatable read a purge would not see the claims committed
  // while it waited (claims have no foreign key to organizations).
  const { rows: [{ name }] } = await db.query('SELECT current_database() AS name')
  await db.query(`ALTER DATABASE "${name as string}" SET default_transaction_isolation = 'repeatable read'`)
  t.teardown(async () => { await db.query(`ALTER DATABASE "${name as string}" RESET default_transaction_isolation`) })
  const { app, admin, tokenB } = await serviceWithSecondOrganization(t, { admin: ADMIN, keyA: KEY_A, tokenA: '' }, id, { env: { WEBHOOK_AUTH: 'none' } })
  t.equal((await sql<{ level: string }>`SELECT current_setting('transaction_isolation') AS level`.execute(app.db)).rows[0].level, 'repeatable read', 'the service\'s connections default to repeatable read')
  const holder = await sqlClient(t)
  for (const r of [uid('req-r'), uid('req-r'), uid('req-r')]) {
    const res = await app.inject({ method: 'POST', url: '/webhooks/litellm', headers: { 'content-type': 'application/json', authorization: `Bearer ${tokenB}` }, payload: seedEvent({ request_id: r }) })
    t.equal(res.statusCode, 202)
  }
  // The claim stops between locking its events and inserting its claims (the table is held in SHARE mode).
  await holder.query('BEGIN')
  await holder.query('LOCK TABLE usage_event_claims IN SHARE MODE')
  const claim = claimDueEvents(app.db, { organization: id, worker: 'racing', limit: 10, leaseMs: 60_000, metricCode: 'ai_usage' })
  await until(async () => await waitingOnLock(db, 'INSERT INTO usage_event_claims'), 'the claim waiting to insert its claims')
  // Disabled and purged meanwhile: the purge waits on the events the claim has locked.
  t.equal((await admin.post(`/api/organizations/${id}/disable`)).statusCode, 200)
  const purge = admin.delete(`/api/organizations/${id}`)
  await until(async () => await waitingOnLock(db, 'DELETE FROM "litellm_usage_events"'), 'the purge waiting on the claimed events')
  await holder.query('COMMIT')

  const claimed = await claim
  t.equal(claimed.length, 3, 'the claim went through')
  const purged = await purge
  t.equal(purged.statusCode, 200, purged.body)
  t.match(purged.json(), { deleted_rows: { litellm_usage_events: 3, usage_event_claims: 3 } }, 'the claims committed while the purge waited are deleted with the events')
  t.same((await db.query('SELECT event_id FROM usage_event_claims WHERE organization_id = $1', [id])).rows, [], 'no claim left behind')
})

// Events have no foreign key to organizations: each write locks its organizations (FOR KEY SHARE, once per write)
// and stores only the events of those it found. Both orders of a write and a purge of its organization.
t.test('a write racing the purge of its organization: stored and purged, or refused and not stored; never left behind', async (t) => {
  const id = `written-${randomBytes(3).toString('hex')}`
  const db = await sqlClient(t)
  const { app, admin, simB } = await serviceWithSecondOrganization(t, { admin: ADMIN, keyA: KEY_A, tokenA: '' }, id)
  t.equal((await admin.post(`/api/organizations/${id}/disable`)).statusCode, 200)
  const event = (organizationId: string): UsageEvent => ({ ...fromLiteLLMEvent(seedEvent({ request_id: uid('req-w') }) as Parameters<typeof fromLiteLLMEvent>[0], 'test', new Date()), organizationId })
  const stored = async (requestId: string): Promise<{ events: number, keys: number }> => (await db.query(`
    SELECT (SELECT count(*)::int FROM litellm_usage_events WHERE request_id = $1) AS events,
           (SELECT count(*)::int FROM usage_event_keys WHERE request_id = $1) AS keys`, [requestId])).rows[0]
  // The write first, in a transaction left open: the purge waits for it, then deletes what it stored.
  const first = event(id)
  const writer = await app.db.connection().execute(async (connection) => {
    await sql`BEGIN`.execute(connection)
    const outcomes = await insertUsageEvents(connection, [first])
    const purge = admin.delete(`/api/organizations/${id}`)
    await until(async () => await waitingOnLock(db, 'FOR UPDATE'), 'the purge waiting on the organization the write locked')
    await sql`COMMIT`.execute(connection)
    return { outcomes, purged: await purge }
  })
  t.match(writer.outcomes, [{ status: 'accepted' }], 'stored')
  t.equal(writer.purged.statusCode, 200, writer.purged.body)
  t.match(writer.purged.json(), { deleted_rows: { litellm_usage_events: 1, usage_event_keys: 1 } }, 'the purge deleted what the write committed while it waited')
  t.same(await stored(first.requestId), { events: 0, keys: 0 })

  // The purge first, held after locking its organization (the last table it deletes from is locked): the write
  // waits, then finds the organization gone. Its events are refused and nothing of them stored; another
  // organization's events of the same write are stored.
  t.equal((await admin.post('/api/organizations', { id, name: 'Again Ltd', lago_api_url: simB.url, lago_api_key: 'lago-key-b' })).statusCode, 201)
  t.equal((await admin.post(`/api/organizations/${id}/disable`)).statusCode, 200)
  const { purge, release } = await purgeHeldAfterItsLock(t, db, admin, id)
  const gone = event(id)
  const kept = event('default')
  const write = insertUsageEvents(app.db, [gone, kept, { ...gone }])
  // (pg_stat_activity keeps the first 1 kB of a statement: the insert's opening, not its lock.)
  await until(async () => await waitingOnLock(db, 'WITH input AS'), 'the write waiting on the organization the purge locked')
  await release()
  t.equal((await purge).statusCode, 200)
  const refused = { status: 'rejected', field: '/', message: 'cannot be stored: its organization was deleted while it was being written' }
  t.match(await write, [refused, { status: 'accepted' }, refused], 'its events (and their repeat) refused, the other stored')
  t.same(await stored(gone.requestId), { events: 0, keys: 0 }, 'nothing of it stored')
  t.same(await stored(kept.requestId), { events: 1, keys: 1 })
})

t.test('a route put while its organization is purged waits for the purge, then finds it gone: nothing moved to it', async (t) => {
  const id = `routed-${randomBytes(3).toString('hex')}`
  const db = await sqlClient(t)
  const { admin } = await serviceWithSecondOrganization(t, { admin: ADMIN, keyA: KEY_A, tokenA: '' }, id)
  t.equal((await admin.post(`/api/organizations/${id}/disable`)).statusCode, 200)
  const { purge, release } = await purgeHeldAfterItsLock(t, db, admin, id)
  // The route's move of unrouted events locks the organization first: it waits for the purge.
  const team = uid('team')
  const route = admin.post('/api/organization-routes', { identity: 'team', value: team, organization_id: id })
  await until(async () => await waitingOnLock(db, 'FOR KEY SHARE'), 'the route waiting on the organization the purge locked')
  await release()
  t.equal((await purge).statusCode, 200)
  const put = await route
  t.equal(put.statusCode, 404, put.body)
  t.equal(put.json().code, 'organization_not_found')
  t.same((await db.query('SELECT 1 FROM organization_routes WHERE value = $1', [team])).rows, [], 'no route to it')
  t.same((await db.query('SELECT 1 FROM litellm_usage_events WHERE organization_id = $1', [id])).rows, [], 'no event of it')
})
