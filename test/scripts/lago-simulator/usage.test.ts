import t from 'tap'
import type { LagoClient } from '../../../plugins/app/lago/client.js'
import { clientFor, raw, seedCatalog, simulator, usageEvent } from '../../helpers/lago.js'

type Events = Array<Record<string, unknown>>

/** Sends the events in batches of 100 and returns the subscription's current usage. */
async function usageAfter (client: LagoClient, events: Events) {
  for (let i = 0; i < events.length; i += 100) await client.createBatchEvents(events.slice(i, i + 100) as never)
  return await client.getCurrentUsage('cus-1', 'sub-1')
}

const tokens = (n: number, i: number, props: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) =>
  usageEvent(`e-${i}-${n}`, 'sub-1', { total_tokens: n, ...props }, extra)

t.test('standard: units × decimal price, rounded half-up to cents once per fee', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client, { charge_model: 'standard', properties: { amount: '0.0000025' } })
  const usage = await usageAfter(client, [tokens(1_000_000, 1), tokens(234_567, 2)])
  // 1,234,567 × 0.0000025 = 3.0864175 USD = 308.64175 cents.
  t.match(usage, { amount_cents: 309, total_amount_cents: 309, taxes_amount_cents: 0, currency: 'USD' })
  t.match(usage.charges_usage[0], { units: '1234567.0', total_aggregated_units: '1234567.0', events_count: 2, amount_cents: 309, charge: { charge_model: 'standard' }, billable_metric: { code: 'ai_usage', aggregation_type: 'sum_agg' } })
})

t.test('package: free units, then whole packages rounded up', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client, { charge_model: 'package', properties: { amount: '5', package_size: 1000, free_units: 100 } })
  // 2,050 - 100 free = 1,950 → 2 packages × 5 USD.
  t.equal((await usageAfter(client, [tokens(2000, 1), tokens(50, 2)])).amount_cents, 1000)
})

t.test('graduated: each tier reached bills its units and its flat amount', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client, {
    charge_model: 'graduated',
    properties: {
      graduated_ranges: [
        { from_value: 0, to_value: 1000, per_unit_amount: '0.001', flat_amount: '1' },
        { from_value: 1001, to_value: null, per_unit_amount: '0.0005', flat_amount: '0' }
      ]
    }
  })
  // Tier 1: 1,000 × 0.001 + 1 = 2; tier 2: (2,500 - 1,001 + 1) × 0.0005 = 0.75 → 2.75 USD.
  t.equal((await usageAfter(client, [tokens(2500, 1)])).amount_cents, 275)
})

t.test('volume: every unit at the price of the tier the total falls in, plus its flat amount', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client, {
    charge_model: 'volume',
    properties: {
      volume_ranges: [
        { from_value: 0, to_value: 1000, per_unit_amount: '0.002', flat_amount: '0' },
        { from_value: 1001, to_value: null, per_unit_amount: '0.001', flat_amount: '3' }
      ]
    }
  })
  t.equal((await usageAfter(client, [tokens(800, 1)])).amount_cents, 160, '800 × 0.002')
  // 2,500 × 0.001 + 3 = 5.5 USD: the whole volume moves to the second tier.
  t.equal((await usageAfter(client, [tokens(1700, 2)])).amount_cents, 550)
})

t.test('percentage: rate on the units after free events, plus a fixed fee per paid event', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client, { charge_model: 'percentage', properties: { rate: '2.5', fixed_amount: '0.01', free_units_per_events: 1 } }, { aggregation_type: 'sum_agg', field_name: 'cost_usd' })
  const usage = await usageAfter(client, [
    tokens(1, 1, { cost_usd: '10' }, { timestamp: Math.floor(Date.now() / 1000) - 30 }),
    tokens(1, 2, { cost_usd: '20' }),
    tokens(1, 3, { cost_usd: '30.5' })
  ])
  // Free: the first event's 10. (60.5 - 10) × 2.5% = 1.2625, plus 2 paid events × 0.01 = 1.2825 USD.
  t.equal(usage.amount_cents, 128)
  t.equal(usage.charges_usage[0].units, '60.5')
})

t.test('dynamic: the sum of precise_total_amount_cents, exactly (floats would say 12 here)', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client, { charge_model: 'dynamic', properties: {} })
  const events = Array.from({ length: 1000 }, (_, i) => tokens(10, i, {}, { precise_total_amount_cents: '0.0125' }))
  const usage = await usageAfter(client, events)
  // 1,000 × 0.0125 cents = 12.5 cents exactly → 13 (summing JS numbers gives 12.4999… → 12).
  t.match(usage, { amount_cents: 13, charges_usage: [{ units: '10000.0', events_count: 1000, charge: { charge_model: 'dynamic' } }] })
})

t.test('count_agg with a charge filter on model: each event priced by the most specific filter, else the charge', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client, {
    charge_model: 'standard',
    properties: { amount: '0.01' },
    filters: [
      { values: { model: ['gpt-4o'] }, properties: { amount: '0.02' }, invoice_display_name: 'GPT-4o' },
      { values: { model: ['gpt-4o'], provider: ['openai'] }, properties: { amount: '0.05' } }
    ]
  }, { aggregation_type: 'count_agg' })
  const usage = await usageAfter(client, [
    tokens(1, 1, { model: 'gpt-4o', provider: 'openai' }),
    tokens(1, 2, { model: 'gpt-4o', provider: 'azure' }),
    tokens(1, 3, { model: 'gpt-4o', provider: 'azure' }),
    tokens(1, 4, { model: 'claude-3', provider: 'anthropic' })
  ])
  // openai gpt-4o: 0.05; other gpt-4o: 2 × 0.02; claude: 0.01 → 5 + 4 + 1 cents.
  t.equal(usage.amount_cents, 10)
  t.same(usage.charges_usage[0].filters, [
    { units: '2.0', total_aggregated_units: '2.0', amount_cents: 4, events_count: 2, invoice_display_name: 'GPT-4o', values: { model: ['gpt-4o'] } },
    { units: '1.0', total_aggregated_units: '1.0', amount_cents: 5, events_count: 1, values: { model: ['gpt-4o'], provider: ['openai'] } },
    { units: '1.0', total_aggregated_units: '1.0', amount_cents: 1, events_count: 1, values: {} }
  ])
})

t.test('pricing_group_keys: one fee per provider, each rounded on its own', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client, { charge_model: 'standard', properties: { amount: '0.000015', pricing_group_keys: ['provider'] } })
  const usage = await usageAfter(client, [tokens(1000, 1, { provider: 'openai' }), tokens(500, 2, { provider: 'anthropic' })])
  // 0.015 USD → 2 cents and 0.0075 USD → 1 cent (ungrouped, 0.0225 USD would be 2 cents).
  t.equal(usage.amount_cents, 3)
  t.same(usage.charges_usage[0].grouped_usage?.map((g) => [g.grouped_by, g.units, g.amount_cents, g.events_count]), [
    [{ provider: 'openai' }, '1000.0', 2, 1],
    [{ provider: 'anthropic' }, '500.0', 1, 1]
  ])
})

t.test('current_usage errors: unknown customer 404, no active subscription 405', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client)
  t.same((await raw(sim, 'GET', '/api/v1/customers/nobody/current_usage?external_subscription_id=sub-1')).json(), { status: 404, error: 'Not Found', code: 'customer_not_found' })
  t.same((await raw(sim, 'GET', '/api/v1/customers/cus-1/current_usage')).json(), { status: 405, error: 'Method Not Allowed', code: 'no_active_subscription' })
  t.equal((await raw(sim, 'GET', '/api/v1/customers/cus-1/current_usage?external_subscription_id=sub-1')).status, 200)
})

t.test('closing a period issues a finalized invoice with fees and starts a new period; download and PDF', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await seedCatalog(client)
  await client.createBatchEvents([tokens(1500, 1), tokens(500, 2)])
  const closed = await raw(sim, 'POST', '/__simulator/subscriptions/sub-1/close-period', { issuing_date: '2026-11-30' })
  const invoice = closed.json().invoice
  t.match(invoice, {
    status: 'finalized',
    payment_status: 'pending',
    invoice_type: 'subscription',
    issuing_date: '2026-11-30',
    currency: 'USD',
    fees_amount_cents: 200,
    sub_total_excluding_taxes_amount_cents: 200,
    taxes_amount_cents: 0,
    total_amount_cents: 200,
    file_url: null,
    customer: { external_id: 'cus-1' },
    subscriptions: [{ external_id: 'sub-1' }],
    fees: [{ amount_cents: 200, units: '2000.0', events_count: 2, precise_unit_amount: '0.001', item: { type: 'charge', code: 'ai_usage', item_type: 'BillableMetric' } }]
  })
  t.equal((await client.getCurrentUsage('cus-1', 'sub-1')).amount_cents, 0, 'the new period starts empty')
  await client.createBatchEvents([tokens(100, 3)])
  t.equal((await client.getCurrentUsage('cus-1', 'sub-1')).amount_cents, 10)
  t.same(sim.state.unbilledEvents(), [], 'every event is billed once')

  const pending = await raw(sim, 'POST', `/api/v1/invoices/${invoice.lago_id as string}/download`)
  t.equal(pending.status, 200)
  t.equal(pending.text, '', 'no PDF yet: 200 with an empty body')
  t.equal((await raw(sim, 'POST', `/__simulator/invoices/${invoice.lago_id as string}/pdf`)).status, 200)
  const ready = await raw(sim, 'POST', `/api/v1/invoices/${invoice.lago_id as string}/download`)
  const fileUrl = ready.json().invoice.file_url as string
  t.match(fileUrl, `${sim.url}/__simulator/files/invoices/`)
  const pdf = await fetch(fileUrl)
  t.equal(pdf.headers.get('content-type'), 'application/pdf')
  t.match(await pdf.text(), /^%PDF-/)

  t.equal((await raw(sim, 'PUT', `/__simulator/invoices/${invoice.lago_id as string}`, { status: 'draft' })).status, 200)
  t.same((await raw(sim, 'POST', `/api/v1/invoices/${invoice.lago_id as string}/download`)).json(), { status: 404, error: 'Not Found', code: 'invoice_not_found' }, 'only finalized invoices download')

  // Terminating issues the termination invoice with the events since the last close.
  await client.terminateSubscription('sub-1')
  const invoices = await client.listCustomerInvoices('cus-1')
  t.same(invoices.invoices.map((i) => i.total_amount_cents), [10, 200], 'newest first')
  t.same((await raw(sim, 'GET', '/api/v1/customers/nobody/invoices')).json().code, 'customer_not_found')
})
