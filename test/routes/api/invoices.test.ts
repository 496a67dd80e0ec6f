import t from 'tap'
import { buildForwarding, ingest, until } from '../../helpers/forwarding.js'
import { apiClient, subscribedCustomer } from '../../helpers/api.js'
import { seedEvent } from '../../helpers/app.js'

t.test('invoices: a customer\'s list with filters, one invoice with its fees, the PDF URL', async (t) => {
  const { app, sim } = await buildForwarding(t, { BOOTSTRAP_ON_START: 'false' })
  const api = apiClient(app)
  await subscribedCustomer(api, { customer: 'inv', plan: 'invoiced', amountCents: 1000 })
  const now = Math.floor(Date.now() / 1000)
  const events = [seedEvent({ customer_id: 'inv', timestamp: now }), seedEvent({ customer_id: 'inv', timestamp: now })]
  await ingest(app, events)
  await until(() => sim.state.storedEvents().filter((e) => e.external_subscription_id === 'inv').length === 2, 'the events in Lago')

  const october = sim.state.closePeriod('inv', { issuing_date: '2026-10-31' }).invoice
  const november = sim.state.closePeriod('inv', { issuing_date: '2026-11-30', status: 'draft' }).invoice
  const december = sim.state.closePeriod('inv', { issuing_date: '2026-12-31', payment_status: 'succeeded' }).invoice

  const all = await api.get('/api/customers/inv/invoices')
  t.equal(all.statusCode, 200)
  t.same(all.json().invoices.map((i: { lago_id: string }) => i.lago_id), [december.lago_id, november.lago_id, october.lago_id], 'newest first')
  t.match(all.json().invoices[2], {
    lago_id: october.lago_id,
    number: String,
    issuing_date: '2026-10-31',
    status: 'finalized',
    payment_status: 'pending',
    invoice_type: 'subscription',
    currency: 'USD',
    fees_amount_cents: 1500,
    taxes_amount_cents: 0,
    total_amount_cents: 1500,
    file_url: null
  })
  const ids = async (query: string) => (await api.get(`/api/customers/inv/invoices?${query}`)).json().invoices.map((i: { lago_id: string }) => i.lago_id)
  t.same(await ids('status=draft'), [november.lago_id])
  t.same(await ids('payment_status=succeeded'), [december.lago_id])
  t.same(await ids('issuing_date_from=2026-11-01'), [december.lago_id, november.lago_id])
  t.same(await ids('issuing_date_from=2026-11-01&issuing_date_to=2026-11-30'), [november.lago_id])
  const paged = await api.get('/api/customers/inv/invoices?per_page=2&page=2')
  t.same(paged.json().meta, { page: 2, per_page: 2, total_count: 3, total_pages: 2, next_page: null, prev_page: 1 })
  t.equal((await api.get('/api/customers/inv/invoices?status=paid')).statusCode, 400)
  t.equal((await api.get('/api/customers/inv/invoices?issuing_date_from=31-10-2026')).statusCode, 400)
  t.equal((await api.get('/api/customers/nobody/invoices')).json().code, 'customer_not_found')

  const detail = await api.get(`/api/invoices/${october.lago_id}`)
  t.equal(detail.statusCode, 200)
  t.match(detail.json(), { lago_id: october.lago_id, customer_external_id: 'inv', subscription_external_ids: ['inv'], total_amount_cents: 1500 })
  t.same(detail.json().fees.map((f: Record<string, unknown>) => [f.item_type, f.code, f.units, f.events_count, f.amount_cents, f.precise_amount]), [
    ['subscription', 'invoiced', '1.0', null, 1000, '10'],
    ['charge', 'ai_usage', '500.0', 2, 500, '5']
  ], 'the plan fee, and 500 tokens at 0.01')

  const generating = await api.post(`/api/invoices/${october.lago_id}/download`)
  t.equal(generating.statusCode, 202)
  t.same(generating.json(), { status: 'generating', file_url: null, message: 'Lago is generating the PDF: ask again in a few seconds' })
  sim.state.generateInvoicePdf(october.lago_id)
  const available = await api.post(`/api/invoices/${october.lago_id}/download`)
  t.equal(available.statusCode, 200)
  t.match(available.json(), { status: 'available', file_url: new RegExp(`/invoices/${october.lago_id}\\.pdf$`) })

  const draft = await api.post(`/api/invoices/${november.lago_id}/download`)
  t.equal(draft.statusCode, 404)
  t.match(draft.json(), { code: 'invoice_not_found', message: /only finalized invoices have a PDF/ })
  const unknown = '00000000-0000-4000-8000-000000000000'
  t.same((await api.get(`/api/invoices/${unknown}`)).json(), { statusCode: 404, error: 'Not Found', code: 'invoice_not_found', message: `No invoice with id "${unknown}"` })
  t.equal((await api.post(`/api/invoices/${unknown}/download`)).statusCode, 404)
  t.match((await api.get('/api/invoices/INV-001')).json(), { statusCode: 400, details: [{ field: '/id' }] }, 'an invoice id is Lago\'s UUID')

  sim.faults.failNext(1, 502, { route: 'GET /api/v1/invoices/:lago_id' })
  t.equal((await api.get(`/api/invoices/${october.lago_id}`)).json().code, 'lago_error')
})
