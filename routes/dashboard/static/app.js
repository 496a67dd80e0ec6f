// The dashboard: plain ES modules over the service's JSON API (no framework, no build step). The page holds no
// data; every number comes from /api with the operator's key, kept in sessionStorage for this tab only.
import { ago, count, decimal, duration, exactTime, perSecond, usd } from './format.js'

const KEY_STORAGE = 'lago-api-integration.api-key'
/** The organization an admin key looks at (X-Organization-Id), kept for this tab like the key. */
const ORGANIZATION_STORAGE = 'lago-api-integration.organization'
const POLL_MS = 3000
const FORWARDER_LABELS = {
  running: 'Running',
  lago_unavailable: 'Lago down',
  rate_limited: 'Rate limited',
  unauthorized: 'Unauthorized',
  stopped: 'Stopped',
  disabled: 'Disabled'
}
const SOURCE_LABELS = {
  generic_api: 'generic_api (LiteLLM generic logger)',
  lago_callback: 'Lago callback (LiteLLM)',
  openmeter: 'OpenMeter (LiteLLM)',
  webhook: 'webhook',
  webhook_batch: 'webhook (batch)',
  spend_logs: 'reconciliation (spend logs)'
}
const IDENTITY_KINDS = ['end_user', 'user', 'team', 'org', 'key_alias', 'key_hash']
// lago_error events are resent verbatim (same transaction_id), so Lago cannot bill them twice (README).
const RETRYABLE = new Set(['dead', 'failed', 'lago_error'])

const $ = (id) => document.getElementById(id)

/** An element with attributes and children; strings become text nodes (never HTML). */
function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v)
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) el.append(c instanceof window.Node ? c : String(c))
  return el
}

const numberCell = (n, exact = String(n)) => h('td', { class: 'num', title: exact, dataset: { value: exact } }, count(n))
const costCell = (value) => h('td', { class: 'num', title: `${value} USD`, dataset: { value } }, usd(value))
const timeEl = (iso) => h('time', { datetime: iso, title: exactTime(iso) }, ago(iso))

// ---- API ----

class Unauthorized extends Error {}
/** An answer about the organization shown before a switch: dropped, never drawn. */
class Stale extends Error {}

let apiKey = sessionStorage.getItem(KEY_STORAGE)
/**
 * The organization named in X-Organization-Id on every call: only with an admin key (GET /api/organizations
 * answers 200), null otherwise (a key sees its own organization, and names none).
 */
let organization = null

async function api (path, options = {}) {
  const asked = organization
  const res = await fetch(path, {
    ...options,
    headers: {
      authorization: `Bearer ${apiKey}`,
      ...(asked !== null ? { 'x-organization-id': asked } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...options.headers
    }
  })
  if (res.status === 401) throw new Unauthorized('The API key was refused')
  const body = res.headers.get('content-type')?.includes('json') ? await res.json() : null
  if (asked !== organization) throw new Stale('another organization is shown now')
  if (!res.ok) {
    const err = new Error(body?.message ?? `${res.status} ${res.statusText}`)
    err.status = res.status
    err.code = body?.code
    throw err
  }
  return body
}

/**
 * The periodic billing audit's last report (GET /api/billing/audit/last: no Lago call, unlike a live audit on every
 * page load), or { notRun: message } before its first run.
 */
async function lastAudit () {
  try {
    return await api('/api/billing/audit/last')
  } catch (err) {
    if (err.status === 404 && err.code === 'billing_audit_not_run') return { notRun: err.message }
    throw err
  }
}

function notice (text, kind = 'info') {
  const el = $('notice')
  el.textContent = text
  el.className = `notice ${kind}`
}

// ---- Sign-in ----

function showSignIn (message = '') {
  stopPolling()
  $('dashboard').hidden = true
  $('session').hidden = true
  $('sign-in').hidden = false
  $('sign-in-error').textContent = message
  $('api-key').value = ''
  $('api-key').focus()
}

function signOut (message) {
  apiKey = null
  organization = null
  sessionStorage.removeItem(KEY_STORAGE)
  sessionStorage.removeItem(ORGANIZATION_STORAGE)
  $('organization-switcher').hidden = true
  showSignIn(message)
}

async function signIn (key) {
  apiKey = key
  try {
    await api('/api/pipeline')
  } catch (err) {
    apiKey = null
    $('sign-in-error').textContent = err instanceof Unauthorized
      ? 'That key was refused (401). Check it against API_KEYS or `npm run keys -- list`.'
      : `Could not reach the service: ${err.message}`
    $('api-key').focus()
    return
  }
  sessionStorage.setItem(KEY_STORAGE, key)
  await showDashboard()
}

async function showDashboard () {
  $('sign-in').hidden = true
  $('dashboard').hidden = false
  $('session').hidden = false
  if (await loadOrganizations()) start()
}

/**
 * The organization switcher, for an admin key only: GET /api/organizations answers it (any other key gets 403 and
 * sees its own organization, without a switcher). The choice survives a reload of this tab.
 */
async function loadOrganizations () {
  organization = null
  let list = null
  try {
    list = (await api('/api/organizations')).organizations
  } catch (err) {
    if (err instanceof Unauthorized) {
      signOut('The API key is no longer accepted: sign in again.')
      return false
    }
    // 403 admin_required: not an admin key. Anything else is said; the key's own organization is shown meanwhile.
    if (err.status !== 403) notice(`Organizations: ${err.message}`, 'error')
    list = null
  }
  const switcher = $('organization-switcher')
  switcher.hidden = list === null
  if (list === null) return true
  const kept = sessionStorage.getItem(ORGANIZATION_STORAGE)
  organization = list.some((o) => o.id === kept) ? kept : list.some((o) => o.id === 'default') ? 'default' : list[0]?.id ?? null
  $('organization').replaceChildren(...list.map((o) => h('option', { value: o.id, selected: o.id === organization },
    o.status === 'active' ? `${o.name} (${o.id})` : `${o.name} (${o.id}, ${o.status})`)))
  return true
}

/** Another organization picked: everything on the page is reloaded for it; nothing of the previous one stays. */
function switchOrganization (id) {
  organization = id
  sessionStorage.setItem(ORGANIZATION_STORAGE, id)
  notice('')
  rateHistory.t.length = rateHistory.in.length = rateHistory.out.length = 0
  charts.get('pipeline-chart')?.destroy()
  charts.delete('pipeline-chart')
  $('pipeline-chart').replaceChildren()
  lastUsage = undefined
  start()
}

/** Every failure of a refresh: a refused key signs out, anything else is shown and retried on the next poll. */
function failed (what) {
  return (err) => {
    if (err instanceof Stale) return
    if (err instanceof Unauthorized) signOut('The API key is no longer accepted: sign in again.')
    else notice(`${what}: ${err.message}`, 'error')
  }
}

// ---- Charts (uPlot from node_modules, loaded after the first paint) ----

let uPlotModule
/** uPlot and its stylesheet, after the first paint (neither blocks it). */
function loadUPlot () {
  if (uPlotModule === undefined) {
    document.head.append(h('link', { rel: 'stylesheet', href: '/dashboard/vendor/uplot/uPlot.min.css' }))
    uPlotModule = import('/dashboard/vendor/uplot/uPlot.esm.js').then((m) => m.default)
  }
  return uPlotModule
}
const PALETTE = ['#1f5fa8', '#b3471d', '#2d7d46', '#7b3fa0', '#8a6d00', '#0e7c86', '#a3245c', '#4d4d4d']
const charts = new Map()

async function drawChart (id, labels, x, series, { yLabel = '', decimals = 4, xRange } = {}) {
  const UPlot = await loadUPlot()
  const el = $(id)
  charts.get(id)?.destroy()
  el.replaceChildren()
  if (x.length === 0) {
    el.append(h('p', { class: 'muted' }, 'No data in this range.'))
    return
  }
  const width = Math.max(260, el.clientWidth)
  const opts = {
    width,
    height: 220,
    // y from zero, so that a flat line reads as flat and not as a swing.
    scales: { x: { time: true, ...(xRange !== undefined ? { range: xRange } : {}) }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [{ space: 70 }, { label: yLabel, size: 60, values: (_u, ticks) => ticks.map((t) => t.toFixed(t !== 0 && Math.abs(t) < 1 ? decimals : 0)) }],
    series: [{}, ...labels.map((label, i) => ({ label, stroke: PALETTE[i % PALETTE.length], width: 2, points: { show: x.length < 40 } }))],
    legend: { live: false }
  }
  charts.set(id, new UPlot(opts, [x, ...series], el))
}

window.addEventListener('resize', () => {
  for (const [id, chart] of charts) chart.setSize({ width: Math.max(260, $(id).clientWidth), height: 220 })
})

// ---- 1. Pipeline ----

const rateHistory = { t: [], in: [], out: [] }

async function refreshPipeline () {
  const p = await api('/api/pipeline')
  $('rate-in').textContent = perSecond(p.received_per_second)
  $('rate-in').title = `${p.received_per_second} events/s over the last ${p.window_seconds} s`
  $('received-minute').textContent = `${count(p.received_last_minute)} in the last minute`
  $('received-minute').dataset.value = String(p.received_last_minute)
  $('rate-out').textContent = perSecond(p.forwarded_per_second)
  $('rate-out').title = `${p.forwarded_per_second} events/s over the last ${p.window_seconds} s`
  $('forwarded-minute').textContent = `${count(p.forwarded_last_minute)} in the last minute`
  $('forwarded-minute').dataset.value = String(p.forwarded_last_minute)
  $('backlog').textContent = count(p.backlog)
  $('backlog').title = String(p.backlog)
  $('backlog').dataset.value = String(p.backlog)
  $('oldest').textContent = p.oldest_pending_age_seconds === null ? 'nothing waits' : `oldest waits ${duration(p.oldest_pending_age_seconds)}`
  $('oldest').title = p.oldest_pending_age_seconds === null ? '' : `${p.oldest_pending_age_seconds} s`
  const state = p.forwarder
  const stateEl = $('forwarder-state')
  stateEl.textContent = FORWARDER_LABELS[state.status] ?? state.status
  stateEl.dataset.status = state.status
  stateEl.className = `value state-${state.status === 'running' ? 'ok' : state.status === 'disabled' ? 'off' : 'bad'}`
  const since = $('forwarder-since')
  since.replaceChildren(...(state.since !== undefined ? ['since ', timeEl(state.since)] : [state.reason ?? '']))

  $('sources').tBodies[0].replaceChildren(...p.sources.map((s) => h('tr', { dataset: { source: s.source } },
    h('th', { scope: 'row' }, SOURCE_LABELS[s.source] ?? s.source),
    numberCell(s.received_last_minute), numberCell(s.forwarded_last_minute), numberCell(s.backlog), numberCell(s.problems))))

  rateHistory.t.push(Date.parse(p.generated_at) / 1000)
  rateHistory.in.push(p.received_per_second)
  rateHistory.out.push(p.forwarded_per_second)
  for (const a of Object.values(rateHistory)) if (a.length > 200) a.shift()
  if (rateHistory.t.length >= 2) {
    const chart = charts.get('pipeline-chart')
    if (chart !== undefined) chart.setData([rateHistory.t, rateHistory.in, rateHistory.out])
    // Since the page opened, at least a minute (whole-second ticks, not fractions) and at most five.
    else await drawChart('pipeline-chart', ['in', 'forwarded'], rateHistory.t, [rateHistory.in, rateHistory.out], { yLabel: 'events/s', decimals: 2, xRange: (_u, _min, max) => [Math.max(max - 300, Math.min(rateHistory.t[0], max - 60)), max] })
  }
  $('updated').textContent = `Updated ${new Date(p.generated_at).toLocaleTimeString()}`
}

// ---- 2. Problems ----

async function refreshProblems () {
  const p = await api('/api/problems')
  $('problems-total').textContent = p.total_events > 0 ? `(${count(p.total_events)} events)` : ''
  $('problems-empty').hidden = p.groups.length > 0
  $('problem-groups').hidden = p.groups.length === 0
  $('problem-groups').tBodies[0].replaceChildren(...p.groups.map((g) => h('tr', { dataset: { status: g.status, reason: g.reason } },
    h('td', {}, h('span', { class: `badge badge-${g.status}` }, g.status), g.kind !== null && g.kind !== g.status ? h('span', { class: 'muted small' }, ` ${g.kind}`) : null),
    h('td', { class: 'reason', title: g.reason }, g.reason),
    h('td', { class: 'num', title: `${g.events} events, ${g.cost_usd} USD`, dataset: { value: String(g.events) } }, count(g.events)),
    h('td', { class: 'sample' },
      h('code', { title: 'request_id' }, g.sample.request_id), h('br'),
      `${g.sample.customer_external_id} · ${g.sample.model} · ${g.sample.source} · `, timeEl(g.last_received_at)),
    h('td', {}, RETRYABLE.has(g.status)
      ? h('button', { type: 'button', class: 'retry', 'aria-label': `Retry ${g.events} ${g.status} events: ${g.reason}`, onclick: () => retryGroup(g) }, 'Retry')
      : g.status === 'unmapped' ? h('span', { class: 'muted small' }, 'sent once mapped') : null))))

  $('unmapped-empty').hidden = p.unmapped_identities.length > 0
  $('unmapped').hidden = p.unmapped_identities.length === 0
  $('unmapped').tBodies[0].replaceChildren(...p.unmapped_identities.map((u, i) => {
    const kindId = `map-kind-${i}`
    const customerId = `map-customer-${i}`
    const kind = u.identity === null
      ? h('select', { id: kindId, 'aria-label': `Identity kind of ${u.value}` }, ...IDENTITY_KINDS.map((k) => h('option', { value: k }, k)))
      : h('span', { id: kindId, dataset: { kind: u.identity } }, u.identity)
    const input = h('input', { id: customerId, type: 'text', list: 'known-customers', required: true, autocomplete: 'off', placeholder: 'customer external_id' })
    const organization = u.organization_id ?? 'default'
    const value = h('td', {}, h('code', {}, u.value), organization !== 'default' ? h('span', { class: 'muted small' }, ` in ${organization}`) : null)
    // Calls no organization route claims have no organization yet: a mapping cannot release them, a route can.
    if (organization === 'unrouted') {
      return h('tr', { dataset: { identity: u.identity ?? '', value: u.value, organization } },
        h('td', {}, kind), value, numberCell(u.events), costCell(u.cost_usd),
        h('td', {}, h('span', { class: 'muted small' }, 'needs an organization route (POST /api/organization-routes)')))
    }
    const form = h('form', {
      class: 'map',
      onsubmit: (e) => {
        e.preventDefault()
        const identity = u.identity ?? $(kindId).value
        void mapIdentity(identity, u.value, input.value.trim(), form, organization)
      }
    },
    h('label', { for: customerId, class: 'sr-only' }, `Customer for ${u.identity ?? 'subject'} ${u.value}`),
    input, h('button', { type: 'submit' }, 'Map'))
    return h('tr', { dataset: { identity: u.identity ?? '', value: u.value, organization } },
      h('td', {}, kind), value, numberCell(u.events), costCell(u.cost_usd), h('td', {}, form))
  }))
}

async function retryGroup (group) {
  const dialog = $('confirm')
  $('confirm-text').textContent = `Put ${count(group.events)} ${group.status} event(s) back in the queue for Lago? Reason: ${group.reason}`
  dialog.returnValue = ''
  dialog.showModal()
  $('confirm-ok').focus()
  await new Promise((resolve) => dialog.addEventListener('close', resolve, { once: true }))
  if (dialog.returnValue !== 'ok') return
  try {
    const { retried } = await api('/webhooks/retry', { method: 'POST', body: JSON.stringify({ statuses: [group.status], reason: group.reason }) })
    notice(`${count(retried)} event(s) put back in the queue.`, 'ok')
    await Promise.all([refreshProblems(), refreshPipeline()])
  } catch (err) {
    failed('Retry failed')(err)
  }
}

/** Maps in the organization of the waiting calls (another organization than default needs an admin key). */
async function mapIdentity (identity, value, customer, form, organization) {
  if (customer === '') {
    notice('Type the customer external_id to map to.', 'error')
    form.querySelector('input').focus()
    return
  }
  try {
    const headers = organization !== 'default' ? { 'x-organization-id': organization } : {}
    const res = await api('/api/customer-mappings', { method: 'POST', headers, body: JSON.stringify({ identity, value, customer_id: customer }) })
    notice(`${identity} ${value} now bills ${customer}: ${count(res.released_events)} waiting event(s) queued for Lago.`, 'ok')
    await Promise.all([refreshProblems(), refreshPipeline()])
  } catch (err) {
    failed('Mapping failed')(err)
  }
}

// ---- 3. Usage and cost ----

const isoDay = (d) => d.toISOString().slice(0, 10)
const dayStart = (day) => `${day}T00:00:00.000Z`
const nextDay = (day) => isoDay(new Date(Date.parse(dayStart(day)) + 86_400_000))

function setRange (days) {
  const today = isoDay(new Date())
  $('range-to').value = today
  $('range-from').value = isoDay(new Date(Date.parse(dayStart(today)) - (days - 1) * 86_400_000))
}

/** [from, to) of the picked UTC days: to is the day after the last one shown. */
const pickedRange = () => ({ from: dayStart($('range-from').value), to: dayStart(nextDay($('range-to').value)) })

let lastUsage

async function refreshUsage () {
  const { from, to } = pickedRange()
  const u = await api(`/api/usage?${new URLSearchParams({ from, to, top: '10' })}`)
  lastUsage = u
  const costEl = $('usage-cost')
  costEl.textContent = usd(u.totals.cost_usd)
  costEl.title = `${u.totals.cost_usd} USD`
  costEl.dataset.value = u.totals.cost_usd
  $('usage-requests').textContent = count(u.totals.requests)
  $('usage-requests').title = String(u.totals.requests)
  $('usage-tokens').textContent = count(u.totals.total_tokens)
  $('usage-tokens').title = String(u.totals.total_tokens)
  $('usage-customers').textContent = count(u.totals.customers)

  const rows = (cells, kind) => cells.map((c) => h('tr', { dataset: { [kind]: c.key } },
    h('th', { scope: 'row' }, c.key), numberCell(c.requests), numberCell(c.total_tokens), costCell(c.cost_usd)))
  $('top-customers').tBodies[0].replaceChildren(...rows(u.customers, 'customer'))
  $('models').tBodies[0].replaceChildren(...rows(u.models, 'model'))
  $('known-customers').replaceChildren(...u.customers.filter((c) => c.key !== '(unmapped)').map((c) => h('option', { value: c.key })))

  // Every day of the range, zero where nothing happened, so lines do not jump over quiet days.
  const days = []
  for (let d = $('range-from').value; d <= $('range-to').value && days.length < 400; d = nextDay(d)) days.push(d)
  const byDay = new Map(u.days.map((d) => [d.day, d]))
  const x = days.map((d) => Date.parse(dayStart(d)) / 1000)
  // Charts plot floats; every number shown as text above comes from the exact decimal strings.
  const seriesOf = (keys, pick) => keys.map((k) => days.map((d) => Number(pick(byDay.get(d))?.find((c) => c.key === k)?.cost_usd ?? 0)))
  const customerKeys = u.customers.slice(0, 6).map((c) => c.key)
  const modelKeys = u.models.slice(0, 8).map((c) => c.key)
  await Promise.all([
    drawChart('chart-customers', customerKeys, u.days.length > 0 ? x : [], seriesOf(customerKeys, (d) => d?.customers), { yLabel: 'USD' }),
    drawChart('chart-models', modelKeys, u.days.length > 0 ? x : [], seriesOf(modelKeys, (d) => d?.models), { yLabel: 'USD' })
  ])
}

// ---- 4. Lago ----

const fact = (term, ...desc) => [h('dt', {}, term), h('dd', {}, ...desc)]

async function refreshLago () {
  const [status, audit, webhooks] = await Promise.all([api('/api/lago/status'), lastAudit(), api('/api/lago-webhooks?per_page=10')])
  const b = status.bootstrap
  const d = status.last_delivery
  $('lago-facts').replaceChildren(
    ...fact('Lago', status.configured ? 'configured' : 'not configured (LAGO_API_KEY unset)'),
    ...fact('Last bootstrap', h('span', { dataset: { status: b.status } }, b.status),
      b.last_attempt_at !== null ? [' · ', timeEl(b.last_attempt_at)] : null, b.last_error !== null ? h('span', { class: 'error' }, ` ${b.last_error}`) : null),
    ...fact('Forwarder', FORWARDER_LABELS[status.forwarder.status] ?? status.forwarder.status,
      status.forwarder.since !== undefined ? [' since ', timeEl(status.forwarder.since)] : null),
    ...fact('Last delivery', d === null
      ? 'none yet'
      : [`${count(d.events)} event(s) → HTTP ${d.http_status ?? 'no answer'} · `, timeEl(d.at), d.error !== null ? h('span', { class: 'error' }, ` ${d.error}`) : null])
  )

  $('audit-panel').hidden = false
  if (audit.notRun !== undefined) {
    $('audit-facts').replaceChildren(...fact('Not run yet', audit.notRun))
  } else {
    // The audit's own figures, then each customer whose Lago usage disagrees with what was forwarded, and why.
    const disagreeing = (audit.customers ?? []).filter((c) => c.status !== 'ok').slice(0, 10)
    $('audit-facts').replaceChildren(...Object.entries(audit).filter(([, v]) => v === null || typeof v !== 'object')
      .flatMap(([k, v]) => fact(k.replaceAll('_', ' '), v === null ? '–' : typeof v === 'number' ? count(v) : String(v))),
    ...disagreeing.flatMap((c) => fact(c.customer_external_id, h('span', { class: c.status === 'error' ? 'error' : '' }, c.status),
      (c.causes ?? []).length > 0 ? ` · ${c.causes.map((x) => `${x.cause.replaceAll('_', ' ')} (${count(x.events)})`).join(', ')}` : null)))
  }
  // Lago's webhooks, newest first: what happened, to whom, when it came and when it was acted on.
  const items = webhooks.webhooks
  $('webhooks-empty').hidden = items.length > 0
  $('lago-webhooks').hidden = items.length === 0
  $('lago-webhooks').tBodies[0].replaceChildren(...items.map((w) => h('tr', { dataset: { id: String(w.id), type: w.webhook_type } },
    h('td', {}, h('code', {}, w.webhook_type)),
    h('td', {}, w.customer_external_id ?? h('span', { class: 'muted' }, '–')),
    h('td', {}, timeEl(w.received_at)),
    h('td', {}, w.processed_at !== null
      ? timeEl(w.processed_at)
      : h('span', { class: w.last_error !== null ? 'error' : 'muted', title: w.last_error ?? '' }, w.last_error !== null ? `not yet (${count(w.attempts)} attempt(s))` : 'waiting')))))

  if (!status.configured) {
    $('invoices').hidden = true
    $('invoices-note').textContent = 'Invoices come from Lago, which is not configured.'
    return
  }
  // Invoices of the top customers, newest first, through the API's per-customer list.
  const customers = (lastUsage?.customers ?? []).map((c) => c.key).filter((k) => k !== '(unmapped)').slice(0, 5)
  const lists = await Promise.all(customers.map((c) => api(`/api/customers/${encodeURIComponent(c)}/invoices?per_page=5`)
    .then((r) => r.invoices.map((i) => ({ ...i, customer: c })), (err) => { if (err instanceof Stale) throw err; return [] })))
  const invoices = lists.flat().sort((a, b) => String(b.issuing_date).localeCompare(String(a.issuing_date))).slice(0, 10)
  $('invoices').tBodies[0].replaceChildren(...invoices.map((i) => h('tr', {},
    h('td', {}, i.number ?? i.lago_id), h('td', {}, i.customer),
    h('td', {}, i.issuing_date ?? ''), h('td', {}, `${i.status ?? ''} ${i.payment_status ? `· ${i.payment_status}` : ''}`),
    h('td', { class: 'num', title: `${i.total_amount_cents} cents ${i.currency ?? ''}` }, `${decimal(centsToUnits(i.total_amount_cents))} ${i.currency ?? ''}`))))
  $('invoices').hidden = invoices.length === 0
  $('invoices-note').textContent = invoices.length === 0 ? 'No invoices yet for the top customers.' : ''
}

/** Integer cents as a decimal string of units, exactly: 123456 → "1234.56". */
function centsToUnits (cents) {
  const s = String(cents ?? 0).replace('-', '').padStart(3, '0')
  return `${String(cents).startsWith('-') ? '-' : ''}${s.slice(0, -2)}.${s.slice(-2)}`
}

// ---- Polling ----

let timer
let running = false
/** One polling loop at a time: a loop started before a restart (another organization) ends at its next turn. */
let loop = 0

async function poll (mine = loop) {
  await Promise.all([refreshPipeline().catch(failed('Pipeline')), refreshProblems().catch(failed('Problems'))])
  if (apiKey !== null && running && mine === loop) timer = setTimeout(() => { void poll(mine) }, POLL_MS)
}

function stopPolling () {
  running = false
  loop++
  clearTimeout(timer)
}

function start () {
  running = true
  loop++
  clearTimeout(timer)
  if ($('range-from').value === '') setRange(30)
  void poll()
  void refreshUsage().catch(failed('Usage')).then(() => refreshLago()).catch(failed('Lago'))
}

document.addEventListener('visibilitychange', () => {
  if (apiKey === null) return
  if (document.hidden) stopPolling()
  else if (!running) { running = true; loop++; void poll() }
})

// ---- Wiring ----

$('sign-in-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const key = $('api-key').value.trim()
  if (key === '') {
    $('sign-in-error').textContent = 'Type a service API key.'
    return
  }
  void signIn(key)
})
$('sign-out').addEventListener('click', () => signOut(''))
$('organization').addEventListener('change', (e) => switchOrganization(e.target.value))
$('range').addEventListener('submit', (e) => {
  e.preventDefault()
  if ($('range-from').value > $('range-to').value) {
    notice('The first day must not be after the last.', 'error')
    return
  }
  void refreshUsage().catch(failed('Usage'))
})
for (const button of document.querySelectorAll('#range [data-days]')) {
  button.addEventListener('click', () => {
    setRange(Number(button.dataset.days))
    void refreshUsage().catch(failed('Usage'))
  })
}

// A key from earlier in this tab: straight to the data (a refused key comes back to the sign-in form).
if (apiKey !== null) void showDashboard()
else showSignIn()
