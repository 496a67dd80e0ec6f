import t from 'tap'
import { sqlClient, uid } from '../../../helpers/app.js'
import { apiClient } from '../../../helpers/api.js'
import { storedFor, until } from '../../../helpers/forwarding.js'
import { INGEST_TOKEN, litellmSimulator, postGeneric, storedEvents } from '../../../helpers/litellm.js'
import { ADMIN_API_KEY, buildTwoOrganizations } from '../../../helpers/organizations.js'
import type { RecordedCall } from '../../../../scripts/litellm-simulator/index.js'

// Two organizations, each with its own LiteLLM: default's from LITELLM_URL/LITELLM_MASTER_KEY, the other's stored
// with it (litellm_url, litellm_master_key). Each is reconciled into its own organization, with its own cursor.
const MINUTE_US = 60_000_000
const nowUs = (): number => Date.now() * 1000

t.test('each organization\'s LiteLLM is reconciled into it alone, with its own cursor, and reaches only its own Lago', async (t) => {
  const litellmA = await litellmSimulator(t, { masterKey: 'sk-master-of-a' })
  const litellmB = await litellmSimulator(t, { masterKey: 'sk-master-of-b' })
  const { app, simA, simB, b, tokenB } = await buildTwoOrganizations(t, {
    WEBHOOK_TOKENS: INGEST_TOKEN,
    LITELLM_URL: litellmA.url,
    LITELLM_MASTER_KEY: litellmA.masterKey,
    LITELLM_RECONCILE_LAG_MS: '60000',
    LITELLM_RECONCILE_LOOKBACK_MS: '7200000',
    LITELLM_RECONCILE_INTERVAL_MS: '3600000'
  })
  const db = await sqlClient(t)
  const admin = apiClient(app, ADMIN_API_KEY)
  // An admin key: /webhooks/stats lists every organization's reconciliation for it (a service key: its own).
  const stats = async () => (await app.inject({ url: '/webhooks/stats', headers: { authorization: `Bearer ${ADMIN_API_KEY}` } })).json()
  t.same((await stats()).reconciliations.map((r: { organization_id: string }) => r.organization_id), ['default'], 'B has no LiteLLM yet')
  t.same(await app.reconciler.run(b), { status: 'disabled' })

  // B gets its LiteLLM: its master key is stored encrypted, never returned.
  const patched = await admin.patch(`/api/organizations/${b}`, { litellm_url: litellmB.url, litellm_master_key: litellmB.masterKey })
  t.equal(patched.statusCode, 200, patched.body)
  t.match(patched.json().organization, { litellm_url: litellmB.url, litellm_master_key_set: true })
  t.notOk(patched.body.includes(litellmB.masterKey))
  t.notOk(JSON.stringify((await db.query('SELECT * FROM organizations WHERE id = $1', [b])).rows).includes(litellmB.masterKey), 'encrypted at rest')
  await until(async () => (await stats()).reconciliations.some((r: { organization_id: string }) => r.organization_id === b), 'B\'s reconciler')
  // The timer's first pass (a second after start; the next is an hour away) is over before any call exists, and its
  // cursors are reset (it moved them past the calls recorded below): the passes below are the only ones that see them.
  await until(async () => {
    const s = await stats()
    return s.reconciliation.last_success_at !== null && s.reconciliations.every((r: { status: string }) => r.status !== 'running')
  }, 'the first timed pass to be over')
  await db.query('DELETE FROM litellm_reconciliation')

  // Each LiteLLM records calls of its own teams; some were pushed with the organization's credential, the rest lost.
  const teamA = uid('team-a')
  const teamB = uid('team-b')
  const record = (litellm: typeof litellmA, team: string, n: number): RecordedCall[] =>
    Array.from({ length: n }, (_, i) => litellm.record({ team, endUser: `${team}-cust`, startMicros: nowUs() - (30 - i) * MINUTE_US }))
  const callsA = record(litellmA, teamA, 6)
  const callsB = record(litellmB, teamB, 5)
  t.equal((await postGeneric(app, callsA.slice(0, 2).map((c) => c.payload))).statusCode, 202)
  t.equal((await postGeneric(app, callsB.slice(0, 2).map((c) => c.payload), { authorization: `Bearer ${tokenB}` })).statusCode, 202)

  const reportB = await app.reconciler.run(b)
  t.match(reportB, { status: 'done', counts: { rows: 5, stored: 3, duplicate: 2 } }, 'B\'s LiteLLM: its 3 lost calls stored, its 2 pushed ones recognised')
  const reportA = await app.reconciler.run()
  t.match(reportA, { status: 'done', counts: { rows: 6, stored: 4, duplicate: 2 } })
  for (const litellm of [litellmA, litellmB]) {
    t.ok(litellm.requests.length > 0 && litellm.requests.every((r) => r.status === 200), 'each LiteLLM is read, with its own master key (another answers 401)')
  }

  const inOrganization = async (organization: string, team: string) =>
    await storedEvents(db, 'organization_id = $1 AND metadata->\'identities\'->>\'team\' = $2', [organization, team])
  const storedB = await inOrganization(b, teamB)
  t.equal(storedB.length, 5, 'B\'s calls, each once, in B')
  t.equal(storedB.filter((e) => e.source === 'spend_logs').length, 3)
  t.same(await inOrganization('default', teamB), [], 'none of B\'s calls in default')
  const storedA = await inOrganization('default', teamA)
  t.equal(storedA.length, 6)
  t.same(await inOrganization(b, teamA), [], 'none of default\'s calls in B')

  // Two cursors, one per organization.
  const cursors = (await db.query('SELECT organization_id, cursor FROM litellm_reconciliation WHERE name = \'spend_logs\' ORDER BY organization_id')).rows
  t.same(cursors.map((r: { organization_id: string }) => r.organization_id).sort(), [b, 'default'].sort())
  t.ok(cursors.every((r: { cursor: Date | null }) => r.cursor !== null && r.cursor.getTime() > Date.now() - 2 * 60_000), 'each within the lag of now')
  const states = (await stats()).reconciliations
  t.match(states, [{ organization_id: b, status: 'idle', last_counts: { stored: 3 } }, { organization_id: 'default', status: 'idle', last_counts: { stored: 4 } }].sort((x, y) => x.organization_id < y.organization_id ? -1 : 1))

  // Each organization's calls reach its own Lago only, exactly once.
  await until(() => storedFor(simB, storedB.map((e) => e.request_id)).size === 5 && storedFor(simA, storedA.map((e) => e.request_id)).size === 6, 'both Lagos to hold their calls')
  t.ok([...storedFor(simB, storedB.map((e) => e.request_id)).values()].every((n) => n === 1), 'B\'s exactly once')
  t.ok([...storedFor(simA, storedA.map((e) => e.request_id)).values()].every((n) => n === 1), 'default\'s exactly once')
  t.equal(storedFor(simA, storedB.map((e) => e.request_id)).size, 0, 'none of B\'s in default\'s Lago')
  t.equal(storedFor(simB, storedA.map((e) => e.request_id)).size, 0, 'none of default\'s in B\'s Lago')
  t.match((await app.inject('/health/metrics')).body, new RegExp(`litellm_reconcile_calls_total\\{outcome="stored",organization="${b}"\\} 3`))

  // Disabled: B's LiteLLM is no longer read.
  t.equal((await admin.post(`/api/organizations/${b}/disable`)).statusCode, 200)
  await until(async () => !(await stats()).reconciliations.some((r: { organization_id: string }) => r.organization_id === b), 'B\'s reconciler to stop')
  t.same(await app.reconciler.run(b), { status: 'disabled' })
})
