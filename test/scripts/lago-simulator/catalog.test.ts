import t from 'tap'
import { clientFor, raw, simulator } from '../../helpers/lago.js'

t.test('customers: POST upserts by external_id, writing only the keys sent; delete frees the external_id', async (t) => {
  const sim = await simulator(t)
  const first = await raw(sim, 'POST', '/api/v1/customers', { customer: { external_id: 'c-1', name: 'One', metadata: [{ key: 'team', value: 'ml', display_in_invoice: true }] } })
  t.equal(first.status, 200)
  const customer = first.json().customer
  t.match(customer, { external_id: 'c-1', name: 'One', email: null, sequential_id: 1, slug: 'SIM-0001', metadata: [{ key: 'team', value: 'ml', display_in_invoice: true }] })
  const second = (await raw(sim, 'POST', '/api/v1/customers', { customer: { external_id: 'c-1', email: 'a@b.test' } })).json().customer
  t.match(second, { lago_id: customer.lago_id, name: 'One', email: 'a@b.test' })
  t.equal((await raw(sim, 'GET', '/api/v1/customers')).json().meta.total_count, 1, 'still one customer')
  t.same((await raw(sim, 'GET', '/api/v1/customers/nope')).json(), { status: 404, error: 'Not Found', code: 'customer_not_found' })
  t.same((await raw(sim, 'PUT', '/api/v1/customers/c-1', { customer: {} })).status, 404, 'there is no PUT /customers/:id')
  t.equal((await raw(sim, 'DELETE', '/api/v1/customers/c-1')).status, 200)
  const recreated = (await raw(sim, 'POST', '/api/v1/customers', { customer: { external_id: 'c-1' } })).json().customer
  t.not(recreated.lago_id, customer.lago_id, 'a POST after delete creates a new customer')
  t.equal(recreated.name, null)
})

t.test('pagination meta: pages, nulls at the ends, zeros when empty', async (t) => {
  const sim = await simulator(t)
  t.same((await raw(sim, 'GET', '/api/v1/customers')).json(), { customers: [], meta: { current_page: 0, next_page: null, prev_page: null, total_pages: 0, total_count: 0 } })
  for (let i = 0; i < 5; i++) await raw(sim, 'POST', '/api/v1/customers', { customer: { external_id: `p-${i}` } })
  const middle = (await raw(sim, 'GET', '/api/v1/customers?per_page=2&page=2')).json()
  t.same(middle.meta, { current_page: 2, next_page: 3, prev_page: 1, total_pages: 3, total_count: 5 })
  t.equal(middle.customers.length, 2)
  t.same((await raw(sim, 'GET', '/api/v1/customers?per_page=2')).json().meta, { current_page: 1, next_page: 2, prev_page: null, total_pages: 3, total_count: 5 })
  t.equal((await raw(sim, 'GET', '/api/v1/customers')).json().customers.length, 5, 'default per_page is 100')
})

t.test('billable metrics: mandatory fields, field_name except for count_agg, codes unique', async (t) => {
  const sim = await simulator(t)
  const post = async (billableMetric: Record<string, unknown>) => await raw(sim, 'POST', '/api/v1/billable_metrics', { billable_metric: billableMetric })
  t.same((await post({})).json().error_details, { name: ['value_is_mandatory'], code: ['value_is_mandatory'], aggregation_type: ['value_is_mandatory'], field_name: ['value_is_mandatory'] })
  t.same((await post({ name: 'x', code: 'x', aggregation_type: 'median_agg', field_name: 'f' })).json().error_details, { aggregation_type: ['value_is_invalid'] })
  const count = (await post({ name: 'Requests', code: 'requests', aggregation_type: 'count_agg', field_name: 'ignored' })).json().billable_metric
  t.match(count, { code: 'requests', field_name: null, lago_id: /^[0-9a-f-]{36}$/ })
  t.same((await post({ name: 'Again', code: 'requests', aggregation_type: 'count_agg' })).json().error_details, { code: ['value_already_exist'] }, 'not an upsert')
})

t.test('plans: decimal-string prices, charge-model rules, billable_metric_id is the metric\'s lago_id', async (t) => {
  const sim = await simulator(t)
  const metric = (await raw(sim, 'POST', '/api/v1/billable_metrics', { billable_metric: { name: 'T', code: 'tokens', aggregation_type: 'sum_agg', field_name: 'total_tokens' } })).json().billable_metric
  const count = (await raw(sim, 'POST', '/api/v1/billable_metrics', { billable_metric: { name: 'R', code: 'requests', aggregation_type: 'count_agg' } })).json().billable_metric
  const plan = (charges: unknown[], code = 'p') => ({ plan: { name: 'P', code, interval: 'monthly', amount_cents: 0, amount_currency: 'USD', pay_in_advance: false, charges } })
  const details = async (charges: unknown[]) => (await raw(sim, 'POST', '/api/v1/plans', plan(charges))).json().error_details
  const range = (from: number, to: number | null, perUnit = '0.1', flat = '0') => ({ from_value: from, to_value: to, per_unit_amount: perUnit, flat_amount: flat })

  t.same(await details([{ billable_metric_id: metric.lago_id, charge_model: 'standard', properties: { amount: 1 } }]), { amount: ['invalid_amount'] }, 'a JSON number is invalid_amount')
  t.same(await details([{ billable_metric_id: metric.lago_id, charge_model: 'package', properties: { amount: '1', package_size: 0 } }]), { package_size: ['invalid_package_size'] })
  t.same(await details([{ billable_metric_id: metric.lago_id, charge_model: 'graduated', properties: {} }]), { graduated_ranges: ['missing_graduated_ranges'] })
  t.same(await details([{ billable_metric_id: metric.lago_id, charge_model: 'graduated', properties: { graduated_ranges: [range(1, 10), range(11, null)] } }]), { graduated_ranges: ['invalid_graduated_ranges'] }, 'first from_value must be 0')
  t.same(await details([{ billable_metric_id: metric.lago_id, charge_model: 'volume', properties: { volume_ranges: [range(0, 10), range(15, null)] } }]), { volume_ranges: ['invalid_volume_ranges'] }, 'ranges must be contiguous')
  t.same(await details([{ billable_metric_id: metric.lago_id, charge_model: 'graduated', properties: { graduated_ranges: [range(0, 10), range(11, 20)] } }]), { graduated_ranges: ['invalid_graduated_ranges'] }, 'the last to_value must be null')
  t.same(await details([{ billable_metric_id: metric.lago_id, charge_model: 'percentage', properties: { rate: 'x' } }]), { rate: ['invalid_rate'] })
  t.same(await details([{ billable_metric_id: count.lago_id, charge_model: 'dynamic', properties: {} }]), { charge_model: ['invalid_aggregation_type_or_charge_model'] }, 'dynamic needs sum_agg')
  t.same(await details([{ billable_metric_id: metric.lago_id, charge_model: 'flat' }]), { charge_model: ['value_is_invalid'] })
  t.same((await raw(sim, 'POST', '/api/v1/plans', plan([{ billable_metric_id: 'tokens', charge_model: 'standard', properties: { amount: '1' } }]))).json(),
    { status: 404, error: 'Not Found', code: 'billable_metric_not_found' }, 'a metric code is not an id')
  t.same((await raw(sim, 'POST', '/api/v1/plans', { plan: { name: 'P' } })).json().error_details,
    { code: ['value_is_mandatory'], interval: ['value_is_mandatory'], amount_cents: ['value_is_mandatory'], amount_currency: ['value_is_mandatory'], pay_in_advance: ['value_is_mandatory'] })

  const created = await raw(sim, 'POST', '/api/v1/plans', plan([
    { billable_metric_id: metric.lago_id, charge_model: 'graduated', properties: { graduated_ranges: [range(0, 10), range(10, null)] } },
    { billable_metric_id: metric.lago_id, charge_model: 'standard', properties: { amount: '0.5' } }
  ]))
  t.equal(created.status, 200)
  t.same(created.json().plan.charges.map((c: { code: string }) => c.code), ['tokens', 'tokens_2'], 'charge codes default to the metric code, unique per plan')
  t.same((await raw(sim, 'POST', '/api/v1/plans', plan([]))).json().error_details, { code: ['value_already_exist'] })
})

t.test('subscriptions: auto-created customer, idempotent, external_id owned by one customer, currency, downgrade at period close', async (t) => {
  const sim = await simulator(t)
  const { client } = clientFor(t, sim)
  await client.createPlan({ name: 'Small', code: 'small', interval: 'monthly', amount_cents: 1000, amount_currency: 'USD', pay_in_advance: false })
  await client.createPlan({ name: 'Tiny', code: 'tiny', interval: 'yearly', amount_cents: 6000, amount_currency: 'USD', pay_in_advance: false })
  await client.createPlan({ name: 'Euro', code: 'euro', interval: 'monthly', amount_cents: 1000, amount_currency: 'EUR', pay_in_advance: false })

  const created = await raw(sim, 'POST', '/api/v1/subscriptions', { subscription: { external_customer_id: 'new-customer', plan_code: 'small', external_id: 's-1' } })
  t.equal(created.status, 200)
  t.match(created.json().subscription, { status: 'active', plan_code: 'small', external_customer_id: 'new-customer', billing_time: 'calendar', plan_amount_cents: 1000 })
  t.match(await client.getCustomer('new-customer'), { external_id: 'new-customer', currency: 'USD' }, 'the customer was created, with the plan\'s currency')
  const again = await raw(sim, 'POST', '/api/v1/subscriptions', { subscription: { external_customer_id: 'new-customer', plan_code: 'small', external_id: 's-1' } })
  t.same(again.json(), created.json(), 'the same request returns the same subscription unchanged')
  t.same((await raw(sim, 'POST', '/api/v1/subscriptions', { subscription: { external_customer_id: 'someone-else', plan_code: 'small', external_id: 's-1' } })).json().error_details,
    { external_id: ['value_already_exist'] })
  t.same((await raw(sim, 'POST', '/api/v1/subscriptions', { subscription: { external_customer_id: 'new-customer', plan_code: 'euro', external_id: 's-2' } })).json().error_details,
    { currency: ['currencies_does_not_match'] })
  t.same((await raw(sim, 'POST', '/api/v1/subscriptions', { subscription: { external_customer_id: 'x', plan_code: 'small', external_id: 's-3', billing_time: 'weekly' } })).json().error_details,
    { billing_time: ['value_is_invalid'] })

  // Tiny costs 60/year against Small's 120/year: a downgrade, applied when the period closes.
  const downgrade = (await raw(sim, 'POST', '/api/v1/subscriptions', { subscription: { external_customer_id: 'new-customer', plan_code: 'tiny', external_id: 's-1' } })).json().subscription
  t.match(downgrade, { plan_code: 'small', status: 'active', next_plan_code: 'tiny', downgrade_plan_date: /^\d{4}-\d\d-\d\d$/ })
  t.equal((await client.listSubscriptions({ 'status[]': ['pending'] })).subscriptions[0].plan_code, 'tiny')
  sim.state.closePeriod('s-1')
  t.match(await client.getSubscription('s-1'), { plan_code: 'tiny', status: 'active', previous_plan_code: 'small' })

  const future = (await raw(sim, 'POST', '/api/v1/subscriptions', { subscription: { external_customer_id: 'f', plan_code: 'small', external_id: 'later', subscription_at: new Date(Date.now() + 86_400_000).toISOString() } })).json().subscription
  t.match(future, { status: 'pending', started_at: null })
  t.equal((await raw(sim, 'DELETE', '/api/v1/subscriptions/later?status=pending')).json().subscription.status, 'canceled')
})
