import { randomUUID } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import type { Page, Request } from 'playwright-core'
import { build, sqlClient } from '../helpers/app.js'
import { simulator } from '../helpers/lago.js'
import { ADMIN_API_KEY, ADMIN_KEY, organizationId, SECRETS_KEY } from '../helpers/organizations.js'
import { dashboardEvents, expectedProblemGroups, expectedUsageTotals, insertEvents, LAGO_ERROR, otherOrganizationEvents } from '../helpers/dashboard.js'
import { freePort } from '../../scripts/free-port.js'
import { defaultRange, dollars, launch, OUTPUT, watchErrors } from '../helpers/browser.js'

// The dashboard with two organizations in a real browser: an admin key gets a switcher, and each organization's
// figures on screen are that organization's API figures (and the hand figures of its rows); a key of one
// organization gets no switcher and its own figures. Forwarding off: the seeded statuses stay as seeded.

const OFFLINE = { API_KEYS: ADMIN_KEY, ADMIN_API_KEYS: ADMIN_API_KEY, ORGANIZATION_SECRETS_KEY: SECRETS_KEY, FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', LAGO_API_KEY: '' }

interface Shown { cost: string | null, requests: string | null, backlog: string | null, groups: Array<{ status: string | null, reason: string | null, events: string | null }> }

/** What the page shows: usage totals, backlog and problem groups (exact values from the data attributes). */
async function shown (page: Page): Promise<Shown> {
  const groups = []
  for (const tr of await page.locator('#problem-groups tbody tr').all()) {
    groups.push({ status: await tr.getAttribute('data-status'), reason: await tr.getAttribute('data-reason'), events: await tr.locator('td.num').getAttribute('data-value') })
  }
  return {
    cost: await page.locator('#usage-cost').getAttribute('data-value'),
    requests: await page.locator('#usage-requests').getAttribute('title'),
    backlog: await page.locator('#backlog').getAttribute('data-value'),
    groups
  }
}

t.test('an admin key switches organizations and sees each one\'s numbers, equal to the API\'s; a key of one organization has no switcher', async (t) => {
  const app = await build(t, OFFLINE)
  const simB = await simulator(t, { apiKey: 'key-of-organization-b' })
  const b = organizationId()
  const created = await app.inject({
    method: 'POST',
    url: '/api/organizations',
    headers: { authorization: `Bearer ${ADMIN_API_KEY}`, 'content-type': 'application/json' },
    payload: JSON.stringify({ id: b, name: 'Organization B', lago_api_url: simB.url, lago_api_key: simB.apiKey })
  })
  t.equal(created.statusCode, 201, created.body)
  const keyB: string = created.json().api_key
  const db = await sqlClient(t)
  const eventsA = dashboardEvents()
  const eventsB = otherOrganizationEvents()
  await insertEvents(db, eventsA)
  await insertEvents(db, eventsB, b)
  await db.query(`INSERT INTO lago_webhooks (organization_id, unique_key, webhook_type, object_type, signature_algo, customer_external_id, body, received_at, processed_at)
                  VALUES ($1, $2, 'invoice.created', 'invoice', 'hmac', 'zeta', '{}', now() - interval '2 hours', now() - interval '2 hours' + interval '1 second')`, [b, randomUUID()])
  const port = await freePort()
  await app.listen({ port, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${port}`
  const range = defaultRange()
  /** The API's figures for an organization, asked as the admin naming it. */
  const apiOf = async (organization: string): Promise<Shown> => {
    const get = async (url: string): Promise<any> => {
      const res = await fetch(`${base}${url}`, { headers: { authorization: `Bearer ${ADMIN_API_KEY}`, 'x-organization-id': organization } })
      if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`)
      return await res.json()
    }
    const [usage, pipeline, problems] = await Promise.all([get(`/api/usage?from=${range.from}&to=${range.to}&top=10`), get('/api/pipeline'), get('/api/problems')])
    return {
      cost: usage.totals.cost_usd,
      requests: String(usage.totals.requests),
      backlog: String(pipeline.backlog),
      groups: problems.groups.map((g: { status: string, reason: string, events: number }) => ({ status: g.status, reason: g.reason, events: String(g.events) }))
    }
  }
  const byHand = (events: typeof eventsA): Shown => ({
    cost: expectedUsageTotals(events).cost_usd,
    requests: String(expectedUsageTotals(events).requests),
    backlog: String(events.filter((e) => e.status === 'pending' || e.status === 'failed').length),
    groups: expectedProblemGroups(events).map((g) => ({ status: g.status, reason: g.reason, events: String(g.events) }))
  })
  const apiA = await apiOf('default')
  const apiB = await apiOf(b)
  t.same(apiA, byHand(eventsA), 'the API\'s default figures are the hand figures of default\'s rows')
  t.same(apiB, byHand(eventsB), 'the API\'s B figures are the hand figures of B\'s rows')
  t.not(apiA.cost, apiB.cost, 'the two organizations differ (a merged or swapped view cannot pass)')

  await mkdir(OUTPUT, { recursive: true })
  const browser = await launch(t)
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const errors = watchErrors(page)
  const calls: Request[] = []
  page.on('request', (r) => { if (new URL(r.url()).pathname.startsWith('/api/') || new URL(r.url()).pathname.startsWith('/webhooks/')) calls.push(r) })
  await page.goto(`${base}/dashboard`)
  await page.getByLabel('Service API key').fill(ADMIN_API_KEY)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator(`#usage-cost[data-value="${apiA.cost}"]`).waitFor()
  await page.locator('#problem-groups tbody tr').first().waitFor()

  // The switcher: labelled, every organization, default first chosen.
  const switcher = page.getByLabel('Organization')
  t.ok(await switcher.isVisible(), 'an admin key gets the organization switcher')
  t.equal(await switcher.inputValue(), 'default')
  const options = await switcher.locator('option').evaluateAll((os) => os.map((o) => o.getAttribute('value')))
  t.ok(options.includes('default') && options.includes(b), `every organization offered (${options.join(', ')})`)
  t.same(await shown(page), apiA, 'default: the page shows the API\'s figures')
  t.equal(await page.locator('#usage-cost').textContent(), dollars(apiA.cost ?? ''))
  t.ok(await page.locator('#webhooks-empty').isVisible(), 'default has no Lago webhook: "none yet"')

  // Switch to B: every section is reloaded for B, and every call names B.
  calls.length = 0
  await switcher.selectOption(b)
  await page.locator(`#usage-cost[data-value="${apiB.cost}"]`).waitFor()
  await page.locator('#problem-groups tbody tr[data-status="lago_error"]').waitFor()
  await page.locator(`#backlog[data-value="${apiB.backlog}"]`).waitFor()
  await page.locator('#lago-webhooks tbody tr').first().waitFor()
  t.same(await shown(page), apiB, `${b}: the page shows B's figures, equal to the API's`)
  t.equal(await page.locator('#usage-cost').textContent(), dollars(apiB.cost ?? ''))
  const named = calls.map((r) => `${new URL(r.url()).pathname} ${r.headers()['x-organization-id'] ?? '(none)'}`)
  for (const path of ['/api/pipeline', '/api/problems', '/api/usage', '/api/lago/status', '/api/lago-webhooks']) {
    t.ok(named.some((n) => n.startsWith(`${path} `)), `${path} asked again after the switch`)
  }
  t.same(named.filter((n) => !n.endsWith(` ${b}`)), [], 'every call after the switch names B')
  t.same(await page.locator('#top-customers tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-customer'))),
    ['zeta', 'acme', '(unmapped)'], 'B\'s customers by cost')

  // The Lago webhooks table: type, customer, received (relative, exact on hover), processed.
  t.same(await page.locator('#lago-webhooks thead th').allTextContents(), ['Type', 'Customer', 'Received', 'Processed'])
  const hook = page.locator('#lago-webhooks tbody tr').first()
  t.same(await hook.locator('td').allTextContents().then((c) => c.slice(0, 2)), ['invoice.created', 'zeta'])
  const stored = (await db.query('SELECT received_at FROM lago_webhooks WHERE organization_id = $1', [b])).rows[0].received_at as Date
  const received = hook.locator('td').nth(2).locator('time')
  t.equal(await received.textContent(), '2 hours ago', 'received: relative')
  t.equal(await received.getAttribute('datetime'), stored.toISOString())
  t.equal(await received.getAttribute('title'), `${stored.toISOString().slice(0, 19).replace('T', ' ')} UTC`, 'the exact time on hover')
  t.equal(await hook.locator('td').nth(3).locator('time').textContent(), '2 hours ago', 'processed: when it was acted on')
  t.ok(await page.locator('#webhooks-empty').isHidden())

  // B's lago_error group: Retry sends statuses ['lago_error'] (and B), and only B's event goes back in the queue.
  const lagoError = page.locator('#problem-groups tbody tr[data-status="lago_error"]')
  t.equal(await lagoError.getAttribute('data-reason'), LAGO_ERROR)
  await page.screenshot({ path: path.join(OUTPUT, 'dashboard-organizations.png'), fullPage: true })
  const retried = page.waitForRequest((r) => new URL(r.url()).pathname === '/webhooks/retry')
  await lagoError.getByRole('button', { name: /^Retry/ }).click()
  await page.locator('dialog#confirm[open]').waitFor()
  await page.getByRole('button', { name: 'Retry', exact: true }).click()
  const request = await retried
  t.same(request.postDataJSON(), { statuses: ['lago_error'], reason: LAGO_ERROR }, 'the group\'s filter')
  t.equal(request.headers()['x-organization-id'], b)
  await page.locator('#notice').filter({ hasText: '1 event(s) put back in the queue' }).waitFor()
  await lagoError.waitFor({ state: 'detached' })
  const statuses = (await db.query("SELECT organization_id = 'default' AS is_default, status FROM litellm_usage_events WHERE last_error->>'message' = $1 OR request_id = ANY($2) ORDER BY 1",
    [LAGO_ERROR, eventsB.filter((e) => e.status === 'lago_error').map((e) => e.request_id)])).rows
  t.same(statuses, [{ is_default: false, status: 'pending' }, { is_default: true, status: 'lago_error' }], 'B\'s event is pending again; default\'s is untouched')

  // Back to default: default's figures again (the choice is kept for the tab).
  await switcher.selectOption('default')
  await page.locator(`#usage-cost[data-value="${apiA.cost}"]`).waitFor()
  await page.locator(`#backlog[data-value="${apiA.backlog}"]`).waitFor()
  await page.locator('#problem-groups tbody tr[data-status="lago_error"]').waitFor()
  t.same(await shown(page), apiA, 'default again')
  await page.reload()
  await page.locator(`#usage-cost[data-value="${apiA.cost}"]`).waitFor()
  t.equal(await page.getByLabel('Organization').inputValue(), 'default', 'the choice survives a reload')

  // A key of organization B: no switcher, B's figures (its lago_error group is gone: retried above).
  await page.getByRole('button', { name: 'Sign out' }).click()
  await page.getByLabel('Service API key').fill(keyB)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator(`#usage-cost[data-value="${apiB.cost}"]`).waitFor()
  await page.locator('#problem-groups tbody tr').first().waitFor()
  t.ok(await page.locator('#organization-switcher').isHidden(), 'no switcher for a key of one organization')
  const nowB = await apiOf(b)
  t.same(await shown(page), nowB, 'B\'s key: B\'s figures, equal to the API\'s')
  t.notOk(nowB.groups.some((g) => g.status === 'lago_error'))
  await page.setViewportSize({ width: 390, height: 844 })
  await page.screenshot({ path: path.join(OUTPUT, 'dashboard-organizations-phone.png'), fullPage: true })
  t.same(errors, [], 'no console errors')
})
