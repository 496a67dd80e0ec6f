// lagoCallbackEventsFor (plain function) on the real database: which Lago-callback events make a reconciliation
// window unsafe. default's LiteLLM may feed every organization (routes), but not one with a LiteLLM of its own.
import t from 'tap'
import { sql } from 'kysely'
import { build, uid } from '../../../helpers/app.js'
import { lagoCallbackEventsFor } from '../../../../plugins/app/reconciler/repository.js'

t.test('a Lago-callback event skips default\'s window unless it came from an organization with its own LiteLLM', async (t) => {
  const app = await build(t, { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', BILLING_AUDIT_INTERVAL_MS: '0' })
  const db = app.db
  const routed = uid('routed').toLowerCase()
  const own = uid('own').toLowerCase()
  await app.organizations.create({ id: routed, name: 'Fed by default\'s LiteLLM (routes)' })
  await app.organizations.create({ id: own, name: 'Its own LiteLLM', litellmUrl: 'http://127.0.0.1:9/litellm' })

  const windows = [0, 1, 2].map((i) => new Date(Date.UTC(2026, 0, 1 + i * 7)))
  const inWindow = (start: Date): Date => new Date(start.getTime() + 60_000)
  const storeCallbackEvent = async (organization: string, receivedAt: Date): Promise<void> => {
    await sql`INSERT INTO litellm_usage_events (organization_id, request_id, customer_external_id, model, provider, tokens_input, tokens_output, total_tokens, cost_usd, "timestamp", source, fingerprint, received_at)
              VALUES (${organization}, ${uid()}, 'c', 'm', 'p', 1, 1, 2, 0.1, ${receivedAt}, 'lago_callback', md5(${uid()}), ${receivedAt})`.execute(db)
  }
  // Week 0: a callback event of default; week 1: of an organization default's LiteLLM routes to; week 2: of an
  // organization with its own LiteLLM.
  await storeCallbackEvent('default', inWindow(windows[0]))
  await storeCallbackEvent(routed, inWindow(windows[1]))
  await storeCallbackEvent(own, inWindow(windows[2]))
  const unsafe = async (organization: string, start: Date): Promise<boolean> =>
    await lagoCallbackEventsFor(db, start, new Date(start.getTime() + 3_600_000), 60_000, organization)

  t.same(await Promise.all(windows.map(async (w) => await unsafe('default', w))), [true, true, false],
    'default: its own and routed organizations\' callbacks count; one with its own LiteLLM does not')
  t.same(await Promise.all(windows.map(async (w) => await unsafe(own, w))), [false, false, true], 'an organization with its own LiteLLM: only its own')
  t.same(await Promise.all(windows.map(async (w) => await unsafe(routed, w))), [false, true, false])
})
