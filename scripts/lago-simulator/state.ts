import { randomUUID } from 'node:crypto'
import type {
  BillableMetricObject, CustomerChargeUsageObject, CustomerObjectExtended, CustomerUsageObject, Currency, EventObject,
  FeeObject, InvoiceObjectExtended, PlanObject, SubscriptionObject, SubscriptionObjectExtended
} from 'lago-javascript-client'
import { Decimal } from './decimal.js'
import { buildCharge, buildMetric, PLAN_INTERVALS, serializeMetric, serializePlan } from './catalog.js'
import { Errors, missingParam, notAllowed, notFound, validationFailure, type FieldErrors } from './errors.js'
import type { ChargeRecord, CustomerRecord, EventRecord, MetricRecord, PlanRecord, SubscriptionRecord } from './model.js'
import { chargeUsage, currencyExponent, lacksAggregationProperty, type ChargeUsage } from './usage.js'
import { calendarPeriodEnd, isBlank, isObject, isoDate, isoMillis, isoSeconds, many, one, paginate, strOrNull, yearlyAmountCents, type Query } from './util.js'

export interface StateSettings {
  /**
   * Off (default), events are accepted as real Lago accepts them: an unknown code or subscription, or a missing
   * external_subscription_id, is stored with 200 and never billed. On, those are refused with 422
   * validation_errors (index-keyed and atomic for batches), as the project's issue describes.
   */
  strictEvents: boolean
  /** LAGO_EVENTS_BATCH_MAX_LENGTH: most events per POST /events/batch. */
  maxBatchSize: number
}

/** Why an event that Lago stored will never be billed. */
export type UnbilledReason =
  | 'missing_external_subscription_id' | 'unknown_code' | 'unknown_subscription' | 'metric_not_in_plan'
  | 'outside_subscription_period' | 'closed_period' | 'missing_aggregation_property'

export interface UnbilledEvent { event: EventObject, reason: UnbilledReason }

/** Extra per-event errors a test injects (fault injection): index in the request → field errors. */
export type EventRejector = (event: Record<string, unknown>, index: number) => FieldErrors | null

export interface ClosePeriodOptions {
  status?: 'draft' | 'finalized'
  payment_status?: 'pending' | 'succeeded' | 'failed'
  issuing_date?: string
  file_url?: string | null
}

export interface InvoicePatch {
  status?: InvoiceObjectExtended['status']
  payment_status?: InvoiceObjectExtended['payment_status']
  file_url?: string | null
  issuing_date?: string
}

const CUSTOMER_FIELDS = [
  'billing_entity_code', 'address_line1', 'address_line2', 'city', 'country', 'currency', 'email', 'legal_name',
  'legal_number', 'logo_url', 'name', 'firstname', 'lastname', 'account_type', 'customer_type', 'phone', 'state',
  'tax_codes', 'tax_identification_number', 'timezone', 'url', 'zipcode', 'net_payment_term', 'external_salesforce_id',
  'finalize_zero_amount_invoice', 'billing_configuration', 'shipping_address', 'integration_customers', 'metadata',
  'skip_invoice_custom_sections', 'invoice_custom_section_codes'
] as const

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/
const NUMERIC_TIMESTAMP = /^\s*\d+(\.\d+)?\s*$/

interface InvoiceRecord {
  object: InvoiceObjectExtended
  customer_lago_id: string
}

/**
 * Everything the simulated Lago organization holds, with Lago's rules. Methods take request bodies and queries
 * as received and return Lago's answers (root-key wrapped), or throw LagoFailure with Lago's error body.
 */
export class LagoState {
  readonly settings: StateSettings
  /** Where served files (invoice PDFs) live; set by the app once it listens. */
  publicUrl = 'http://127.0.0.1'
  /** Lago's outgoing webhooks: set by the app to its sender. */
  onWebhook: (webhookType: string, objectType: string, object: unknown) => void = () => {}
  /** Events already reported by an events.errors webhook (Lago reports each once). */
  private reportedErrors = new Set<EventRecord>()

  private customers = new Map<string, CustomerRecord>() // by lago_id
  private metrics = new Map<string, MetricRecord>() // by lago_id
  private plans = new Map<string, PlanRecord>() // by lago_id
  private subscriptions: SubscriptionRecord[] = []
  private eventList: EventRecord[] = []
  private eventKeys = new Map<string, EventRecord>() // external_subscription_id + transaction_id
  private eventsBySubscription = new Map<string, EventRecord[]>()
  private invoices: InvoiceRecord[] = []
  private customerSequence = 0
  private invoiceSequence = 0

  constructor (settings: Partial<StateSettings> = {}) {
    this.settings = { strictEvents: false, maxBatchSize: 100, ...settings }
  }

  reset (): void {
    this.customers.clear()
    this.metrics.clear()
    this.plans.clear()
    this.subscriptions = []
    this.eventList = []
    this.eventKeys.clear()
    this.eventsBySubscription.clear()
    this.invoices = []
    this.customerSequence = 0
    this.invoiceSequence = 0
    this.reportedErrors.clear()
  }

  // ---- events --------------------------------------------------------------------------------------------

  /** POST /events. */
  createEvent (body: unknown, reject?: EventRejector): { event: EventObject } {
    if (!isObject(body) || !isObject(body.event)) throw missingParam('event')
    const errors = this.validateEvent(body.event, new Set(), 0, reject)
    if (errors !== null) throw validationFailure(errors)
    return { event: this.serializeEvent(this.storeEvent(body.event)) }
  }

  /** POST /events/batch: validates every event, then stores all of them or none (one transaction in Lago). */
  createBatchEvents (body: unknown, reject?: EventRejector): { events: EventObject[] } {
    if (!isObject(body)) throw missingParam('events')
    const items = body.events
    if (!Array.isArray(items) || items.length === 0) throw validationFailure({ events: ['no_events'] })
    if (items.length > this.settings.maxBatchSize) throw validationFailure({ events: ['too_many_events'] })
    const seen = new Set<string>()
    const details: Record<string, FieldErrors> = {}
    items.forEach((item, index) => {
      const errors = this.validateEvent(item, seen, index, reject)
      if (errors !== null) details[String(index)] = errors
    })
    if (Object.keys(details).length > 0) throw validationFailure(details)
    return { events: items.map((item) => this.serializeEvent(this.storeEvent(item as Record<string, unknown>))) }
  }

  private validateEvent (input: unknown, seenInBatch: Set<string>, index: number, reject?: EventRejector): FieldErrors | null {
    const errors = new Errors()
    if (!isObject(input)) {
      errors.add('event', 'value_is_invalid')
      return errors.fields
    }
    const transactionId = strOrNull(input.transaction_id)
    if (transactionId === null || transactionId === '') errors.add('transaction_id', 'value_is_mandatory')
    if (isBlank(input.code)) errors.add('code', 'value_is_mandatory')
    const ts = input.timestamp
    // Lago's contract (OpenAPI: oneOf integer, string): sub-second precision travels as a string ("1651240791.123");
    // a JSON number with decimals is outside it.
    if (ts !== undefined && ts !== null && !(typeof ts === 'number' ? Number.isSafeInteger(ts) && ts >= 0 : typeof ts === 'string' && NUMERIC_TIMESTAMP.test(ts))) {
      errors.add('timestamp', 'invalid_format')
    }
    const subscriptionId = strOrNull(input.external_subscription_id)
    if (this.settings.strictEvents) {
      if (subscriptionId === null || subscriptionId === '') errors.add('external_subscription_id', 'value_is_mandatory')
      if (!isBlank(input.code) && this.metricByCode(String(input.code)) === undefined) errors.add('code', 'value_is_invalid')
    }
    if (transactionId !== null && transactionId !== '') {
      // Inside one batch a transaction_id must be unique even across subscriptions; against stored events the
      // key is (external_subscription_id, transaction_id).
      if (seenInBatch.has(transactionId) || this.eventKeys.has(eventKey(subscriptionId, transactionId))) errors.add('transaction_id', 'value_already_exist')
      seenInBatch.add(transactionId)
    }
    const injected = reject?.(input, index)
    if (injected != null) for (const [field, codes] of Object.entries(injected)) for (const code of codes) errors.add(field, code)
    return errors.empty ? null : errors.fields
  }

  private storeEvent (input: Record<string, unknown>): EventRecord {
    const now = Date.now()
    const ts = input.timestamp
    const subscriptionId = strOrNull(input.external_subscription_id)
    const precise = input.precise_total_amount_cents
    const event: EventRecord = {
      lago_id: randomUUID(),
      transaction_id: String(input.transaction_id),
      external_subscription_id: subscriptionId === '' ? null : subscriptionId,
      code: String(input.code),
      // Unix seconds, possibly fractional; kept to the millisecond as Lago answers it.
      timestamp_ms: ts === undefined || ts === null ? now : Number(Decimal.from(ts).shift(3).round(0, 'floor').toString()),
      properties: isObject(input.properties) ? input.properties : {},
      precise_total_amount_cents: precise === undefined || precise === null ? null : (Decimal.parse(precise)?.toString() ?? String(precise)),
      created_at: isoMillis(now),
      invoiced: false
    }
    this.eventList.push(event)
    this.eventKeys.set(eventKey(event.external_subscription_id, event.transaction_id), event)
    if (event.external_subscription_id !== null) {
      const list = this.eventsBySubscription.get(event.external_subscription_id) ?? []
      list.push(event)
      this.eventsBySubscription.set(event.external_subscription_id, list)
    }
    return event
  }

  serializeEvent (e: EventRecord): EventObject {
    return {
      lago_id: e.lago_id,
      transaction_id: e.transaction_id,
      lago_customer_id: null,
      code: e.code,
      timestamp: isoMillis(e.timestamp_ms),
      precise_total_amount_cents: e.precise_total_amount_cents,
      properties: e.properties,
      lago_subscription_id: null,
      external_subscription_id: e.external_subscription_id as string,
      created_at: e.created_at
    } satisfies EventObject
  }

  /** GET /events/:transaction_id: the first stored match in the organization. */
  getEvent (transactionId: string): { event: EventObject } {
    const event = this.eventList.find((e) => e.transaction_id === transactionId)
    if (event === undefined) throw notFound('event')
    return { event: this.serializeEvent(event) }
  }

  /** GET /events. */
  listEvents (query: Query): { events: EventObject[], meta: ReturnType<typeof paginate>['meta'] } {
    const sub = one(query, 'external_subscription_id')
    const code = one(query, 'code')
    const from = one(query, 'timestamp_from')
    const to = one(query, 'timestamp_to')
    const list = this.eventList.filter((e) =>
      (sub === undefined || e.external_subscription_id === sub) && (code === undefined || e.code === code) &&
      (from === undefined || e.timestamp_ms >= Date.parse(from)) && (to === undefined || e.timestamp_ms <= Date.parse(to)))
      .reverse()
    const { items, meta } = paginate(list, query)
    return { events: items.map((e) => this.serializeEvent(e)), meta }
  }

  /** Every stored event, oldest first (for assertions). */
  storedEvents (): EventObject[] {
    return this.eventList.map((e) => this.serializeEvent(e))
  }

  get eventCount (): number {
    return this.eventList.length
  }

  /**
   * Events real Lago would keep but never bill: no subscription id, an unknown code or subscription, a metric the
   * plan does not charge, a timestamp outside the subscription or in a period already invoiced, or a missing
   * aggregation property. Tests assert this list is empty.
   */
  unbilledEvents (): UnbilledEvent[] {
    const out: UnbilledEvent[] = []
    for (const e of this.eventList) {
      const reason = this.unbilledReason(e)
      if (reason !== null) out.push({ event: this.serializeEvent(e), reason })
    }
    return out
  }

  private unbilledReason (e: EventRecord): UnbilledReason | null {
    if (e.invoiced) return null
    if (e.external_subscription_id === null) return 'missing_external_subscription_id'
    const metric = this.metricByCode(e.code)
    if (metric === undefined) return 'unknown_code'
    const candidates = this.subscriptions.filter((s) => s.external_id === e.external_subscription_id)
    if (candidates.length === 0) return 'unknown_subscription'
    const sub = candidates.find((s) => this.coversTimestamp(s, e.timestamp_ms))
    if (sub === undefined) return 'outside_subscription_period'
    if (e.timestamp_ms < Date.parse(sub.period_started_at)) return 'closed_period'
    if (this.planOf(sub).charges.every((c) => c.billable_metric_id !== metric.lago_id)) return 'metric_not_in_plan'
    if (lacksAggregationProperty(metric, e)) return 'missing_aggregation_property'
    return null
  }

  /**
   * Lago's hourly events validation (clock job, events.errors webhook): the events received since the last run
   * whose code matches no billable metric (invalid_code) or that lack the metric's aggregation property
   * (missing_aggregation_property). Like Lago, it says nothing about events sent to an unknown or inactive
   * subscription, nor about timestamps outside the subscription: those are for the caller's own audit. Returns
   * the object sent, or null when there was nothing to report (Lago sends nothing then).
   */
  validateEvents (): { invalid_code: string[], missing_aggregation_property: string[], invalid_filter_values: string[], missing_group_key: null } | null {
    const report = { invalid_code: [] as string[], missing_aggregation_property: [] as string[], invalid_filter_values: [] as string[], missing_group_key: null }
    for (const e of this.eventList) {
      if (this.reportedErrors.has(e)) continue
      const metric = this.metricByCode(e.code)
      if (metric === undefined) report.invalid_code.push(e.transaction_id)
      else if (lacksAggregationProperty(metric, e)) report.missing_aggregation_property.push(e.transaction_id)
      else continue
      this.reportedErrors.add(e)
    }
    if (report.invalid_code.length === 0 && report.missing_aggregation_property.length === 0) return null
    this.onWebhook('events.errors', 'events_errors', report)
    return report
  }

  private coversTimestamp (s: SubscriptionRecord, ms: number): boolean {
    if (s.started_at === null) return false
    const end = s.terminated_at ?? s.canceled_at
    return ms >= Date.parse(s.started_at) && (end === null || ms <= Date.parse(end) + 999)
  }

  // ---- customers -----------------------------------------------------------------------------------------

  private customerByExternalId (externalId: string): CustomerRecord | undefined {
    return live(this.customers, (c) => c.external_id === externalId)
  }

  private requireCustomer (externalId: string): CustomerRecord {
    return found(this.customerByExternalId(externalId), 'customer')
  }

  /** POST /customers: create or update by external_id; only the keys sent are written. */
  upsertCustomer (body: unknown): { customer: CustomerObjectExtended } {
    if (!isObject(body) || !isObject(body.customer)) throw missingParam('customer')
    const input = body.customer
    const errors = new Errors()
    if (isBlank(input.external_id)) errors.add('external_id', 'value_is_mandatory')
    if (input.currency != null && (typeof input.currency !== 'string' || !/^[A-Z]{3}$/.test(input.currency))) errors.add('currency', 'value_is_invalid')
    if (input.country != null && (typeof input.country !== 'string' || !/^[A-Za-z]{2}$/.test(input.country))) errors.add('country', 'not_a_valid_country_code')
    if (input.email != null && input.email !== '' && (typeof input.email !== 'string' || !input.email.split(',').every((e) => EMAIL.test(e.trim())))) errors.add('email', 'invalid_email_format')
    if (input.account_type != null && !['customer', 'partner'].includes(input.account_type as string)) errors.add('account_type', 'value_is_invalid')
    if (input.customer_type != null && !['company', 'individual'].includes(input.customer_type as string)) errors.add('customer_type', 'value_is_invalid')
    errors.throwIfAny()
    const externalId = String(input.external_id)
    const now = isoSeconds()
    let customer = this.customerByExternalId(externalId)
    const created = customer === undefined
    if (customer === undefined) {
      const sequence = ++this.customerSequence
      customer = { lago_id: randomUUID(), sequential_id: sequence, slug: `SIM-${String(sequence).padStart(4, '0')}`, external_id: externalId, fields: {}, created_at: now, updated_at: now, deleted: false }
      this.customers.set(customer.lago_id, customer)
    }
    for (const key of CUSTOMER_FIELDS) {
      if (!(key in input)) continue
      let value = input[key]
      if (key === 'country' && typeof value === 'string') value = value.toUpperCase()
      if (key === 'metadata' && Array.isArray(value)) {
        value = value.filter(isObject).map((m) => ({ lago_id: randomUUID(), key: m.key, value: m.value, display_in_invoice: m.display_in_invoice === true, created_at: now }))
      }
      customer.fields[key] = value
    }
    customer.updated_at = now
    const serialized = this.serializeCustomer(customer)
    this.onWebhook(created ? 'customer.created' : 'customer.updated', 'customer', serialized)
    return { customer: serialized }
  }

  getCustomer (externalId: string): { customer: CustomerObjectExtended } {
    return { customer: this.serializeCustomer(this.requireCustomer(externalId)) }
  }

  listCustomers (query: Query): { customers: CustomerObjectExtended[], meta: ReturnType<typeof paginate>['meta'] } {
    const externalId = one(query, 'external_id')
    const search = one(query, 'search_term')?.toLowerCase()
    const currencies = many(query, 'currencies')
    const countries = many(query, 'countries')
    const accountTypes = many(query, 'account_type')
    const customerType = one(query, 'customer_type')
    const list = [...this.customers.values()].filter((c) => !c.deleted)
      .filter((c) => externalId === undefined || c.external_id === externalId)
      .filter((c) => search === undefined || [c.external_id, c.fields.name, c.fields.email, c.fields.firstname, c.fields.lastname, c.fields.legal_name]
        .some((v) => typeof v === 'string' && v.toLowerCase().includes(search)))
      .filter((c) => currencies === undefined || currencies.includes(c.fields.currency as string))
      .filter((c) => countries === undefined || countries.includes(c.fields.country as string))
      .filter((c) => accountTypes === undefined || accountTypes.includes((c.fields.account_type as string | undefined) ?? 'customer'))
      .filter((c) => customerType === undefined || c.fields.customer_type === customerType)
      .reverse()
    const { items, meta } = paginate(list, query)
    return { customers: items.map((c) => this.serializeCustomer(c)), meta }
  }

  /** DELETE /customers/:id: soft delete; the customer's subscriptions are terminated. */
  deleteCustomer (externalId: string): { customer: CustomerObjectExtended } {
    const customer = this.requireCustomer(externalId)
    for (const s of this.subscriptions) {
      if (s.customer_lago_id !== customer.lago_id) continue
      if (s.status === 'active') this.terminate(s, true)
      else if (s.status === 'pending') this.cancel(s)
    }
    customer.deleted = true
    return { customer: this.serializeCustomer(customer) }
  }

  private serializeCustomer (c: CustomerRecord): CustomerObjectExtended {
    const f = c.fields
    const nullable = Object.fromEntries(['address_line1', 'address_line2', 'city', 'country', 'currency', 'email', 'legal_name', 'legal_number',
      'logo_url', 'name', 'firstname', 'lastname', 'phone', 'state', 'tax_identification_number', 'timezone', 'url', 'zipcode', 'net_payment_term',
      'external_salesforce_id'].map((k) => [k, f[k] ?? null]))
    return {
      ...nullable,
      lago_id: c.lago_id,
      sequential_id: c.sequential_id,
      slug: c.slug,
      external_id: c.external_id,
      billing_entity_code: (f.billing_entity_code as string | undefined) ?? 'default',
      applicable_timezone: (f.timezone as CustomerObjectExtended['applicable_timezone'] | undefined) ?? 'UTC',
      account_type: (f.account_type as CustomerObjectExtended['account_type']) ?? 'customer',
      ...(f.customer_type !== undefined ? { customer_type: f.customer_type as CustomerObjectExtended['customer_type'] } : {}),
      finalize_zero_amount_invoice: (f.finalize_zero_amount_invoice as CustomerObjectExtended['finalize_zero_amount_invoice']) ?? 'inherit',
      skip_invoice_custom_sections: f.skip_invoice_custom_sections === true,
      billing_configuration: isObject(f.billing_configuration) ? f.billing_configuration : { invoice_grace_period: 0, document_locale: 'en' },
      shipping_address: isObject(f.shipping_address) ? f.shipping_address : { address_line1: null, address_line2: null, city: null, zipcode: null, state: null, country: null },
      metadata: (Array.isArray(f.metadata) ? f.metadata : []) as CustomerObjectExtended['metadata'],
      integration_customers: [],
      taxes: [],
      applicable_invoice_custom_sections: [],
      created_at: c.created_at,
      updated_at: c.updated_at
    } satisfies CustomerObjectExtended
  }

  // ---- billable metrics ----------------------------------------------------------------------------------

  private metricByCode (code: string): MetricRecord | undefined {
    return live(this.metrics, (m) => m.code === code)
  }

  private requireMetric (code: string): MetricRecord {
    return found(this.metricByCode(code), 'billable_metric')
  }

  /** POST /billable_metrics (not an upsert: a code in use is value_already_exist). */
  createBillableMetric (body: unknown): { billable_metric: BillableMetricObject } {
    if (!isObject(body) || !isObject(body.billable_metric)) throw missingParam('billable_metric')
    const metric = buildMetric(body.billable_metric, null)
    if (this.metricByCode(metric.code) !== undefined) throw validationFailure({ code: ['value_already_exist'] })
    this.metrics.set(metric.lago_id, metric)
    return { billable_metric: serializeMetric(metric) }
  }

  getBillableMetric (code: string): { billable_metric: BillableMetricObject } {
    return { billable_metric: serializeMetric(this.requireMetric(code)) }
  }

  listBillableMetrics (query: Query): { billable_metrics: BillableMetricObject[], meta: ReturnType<typeof paginate>['meta'] } {
    const { items, meta } = paginate([...this.metrics.values()].filter((m) => !m.deleted).reverse(), query)
    return { billable_metrics: items.map(serializeMetric), meta }
  }

  updateBillableMetric (code: string, body: unknown): { billable_metric: BillableMetricObject } {
    const current = this.requireMetric(code)
    if (!isObject(body) || !isObject(body.billable_metric)) throw missingParam('billable_metric')
    const updated = buildMetric(body.billable_metric, current)
    const clash = this.metricByCode(updated.code)
    if (clash !== undefined && clash !== current) throw validationFailure({ code: ['value_already_exist'] })
    this.metrics.set(updated.lago_id, updated)
    return { billable_metric: serializeMetric(updated) }
  }

  /** DELETE /billable_metrics/:code: the charges on it go too. */
  deleteBillableMetric (code: string): { billable_metric: BillableMetricObject } {
    const metric = this.requireMetric(code)
    metric.deleted = true
    for (const plan of this.plans.values()) plan.charges = plan.charges.filter((c) => c.billable_metric_id !== metric.lago_id)
    return { billable_metric: serializeMetric(metric) }
  }

  private metricById = (lagoId: string): MetricRecord => {
    const metric = this.metrics.get(lagoId)
    if (metric === undefined) throw new Error(`charge refers to unknown metric ${lagoId}`)
    return metric
  }

  // ---- plans ---------------------------------------------------------------------------------------------

  private planByCode (code: string): PlanRecord | undefined {
    return live(this.plans, (p) => p.code === code)
  }

  private requirePlan (code: string): PlanRecord {
    return found(this.planByCode(code), 'plan')
  }

  private planOf (s: SubscriptionRecord): PlanRecord {
    for (const p of this.plans.values()) if (p.code === s.plan_code && (!p.deleted || s.status !== 'active')) return p
    throw new Error(`subscription ${s.external_id} refers to unknown plan ${s.plan_code}`)
  }

  private buildCharges (inputs: unknown, errors: Errors, current: ChargeRecord[]): ChargeRecord[] {
    if (inputs === undefined) return current
    if (!Array.isArray(inputs)) {
      errors.add('charges', 'value_is_invalid')
      return current
    }
    const taken = new Set<string>()
    const charges: ChargeRecord[] = []
    for (const input of inputs) {
      const existing = isObject(input) && typeof input.id === 'string' ? current.find((c) => c.lago_id === input.id) : undefined
      const charge = buildCharge(input, (id) => {
        const m = this.metrics.get(id)
        return m !== undefined && !m.deleted ? m : undefined
      }, errors, existing, taken)
      if (charge === 'unknown_metric') throw notFound('billable_metric')
      if (charge !== null) charges.push(charge)
    }
    return charges
  }

  private validatePlanScalars (input: Record<string, unknown>, errors: Errors, creating: boolean): void {
    for (const field of ['name', 'code', 'interval', 'amount_cents', 'amount_currency', 'pay_in_advance']) {
      if (creating && (input[field] === undefined || input[field] === null || input[field] === '')) errors.add(field, 'value_is_mandatory')
    }
    if (input.interval != null && !PLAN_INTERVALS.includes(input.interval as PlanRecord['interval'])) errors.add('interval', 'value_is_invalid')
    if (input.amount_cents != null && !(Number.isInteger(input.amount_cents) && (input.amount_cents as number) >= 0)) errors.add('amount_cents', 'value_is_invalid')
    if (input.amount_currency != null && !(typeof input.amount_currency === 'string' && /^[A-Z]{3}$/.test(input.amount_currency))) errors.add('amount_currency', 'value_is_invalid')
    if (input.pay_in_advance != null && typeof input.pay_in_advance !== 'boolean') errors.add('pay_in_advance', 'value_is_invalid')
  }

  /** POST /plans. */
  createPlan (body: unknown): { plan: PlanObject } {
    if (!isObject(body) || !isObject(body.plan)) throw missingParam('plan')
    const input = body.plan
    const errors = new Errors()
    this.validatePlanScalars(input, errors, true)
    const charges = this.buildCharges(input.charges, errors, [])
    if (typeof input.code === 'string' && this.planByCode(input.code) !== undefined) errors.add('code', 'value_already_exist')
    errors.throwIfAny()
    const plan: PlanRecord = {
      lago_id: randomUUID(),
      name: String(input.name),
      code: String(input.code),
      interval: input.interval as PlanRecord['interval'],
      amount_cents: input.amount_cents as number,
      amount_currency: input.amount_currency as Currency,
      pay_in_advance: input.pay_in_advance === true,
      invoice_display_name: typeof input.invoice_display_name === 'string' ? input.invoice_display_name : null,
      description: typeof input.description === 'string' ? input.description : null,
      trial_period: typeof input.trial_period === 'number' ? input.trial_period : 0,
      bill_charges_monthly: typeof input.bill_charges_monthly === 'boolean' ? input.bill_charges_monthly : null,
      charges,
      metadata: isObject(input.metadata) ? input.metadata as Record<string, string | null> : null,
      created_at: isoSeconds(),
      deleted: false
    }
    this.plans.set(plan.lago_id, plan)
    return { plan: serializePlan(plan, this.metricById) }
  }

  getPlan (code: string): { plan: PlanObject } {
    return { plan: serializePlan(this.requirePlan(code), this.metricById) }
  }

  listPlans (query: Query): { plans: PlanObject[], meta: ReturnType<typeof paginate>['meta'] } {
    const { items, meta } = paginate([...this.plans.values()].filter((p) => !p.deleted).reverse(), query)
    return { plans: items.map((p) => serializePlan(p, this.metricById)), meta }
  }

  /**
   * PUT /plans/:code: partial for scalars; a charges array replaces the set (id = update, no id = create,
   * omitted = delete). Once the plan has subscriptions only name, invoice_display_name, description and
   * amount_cents change, as in Lago.
   */
  updatePlan (code: string, body: unknown): { plan: PlanObject } {
    const plan = this.requirePlan(code)
    if (!isObject(body) || !isObject(body.plan)) throw missingParam('plan')
    const input = body.plan
    const errors = new Errors()
    this.validatePlanScalars(input, errors, false)
    const subscribed = this.subscriptions.some((s) => s.plan_code === plan.code && (s.status === 'active' || s.status === 'pending'))
    const charges = subscribed ? plan.charges : this.buildCharges(input.charges, errors, plan.charges)
    if (!subscribed && typeof input.code === 'string' && input.code !== plan.code && this.planByCode(input.code) !== undefined) errors.add('code', 'value_already_exist')
    errors.throwIfAny()
    if (typeof input.name === 'string') plan.name = input.name
    if (input.invoice_display_name !== undefined) plan.invoice_display_name = strOrNull(input.invoice_display_name)
    if (input.description !== undefined) plan.description = strOrNull(input.description)
    if (typeof input.amount_cents === 'number') plan.amount_cents = input.amount_cents
    if (!subscribed) {
      if (typeof input.code === 'string') plan.code = input.code
      if (typeof input.interval === 'string') plan.interval = input.interval as PlanRecord['interval']
      if (typeof input.amount_currency === 'string') plan.amount_currency = input.amount_currency as Currency
      if (typeof input.pay_in_advance === 'boolean') plan.pay_in_advance = input.pay_in_advance
      if (typeof input.trial_period === 'number') plan.trial_period = input.trial_period
      plan.charges = charges
    }
    return { plan: serializePlan(plan, this.metricById) }
  }

  /** DELETE /plans/:code: its subscriptions are terminated. */
  deletePlan (code: string): { plan: PlanObject } {
    const plan = this.requirePlan(code)
    for (const s of this.subscriptions) if (s.plan_code === plan.code && s.status === 'active') this.terminate(s, true)
    plan.deleted = true
    return { plan: serializePlan(plan, this.metricById) }
  }

  // ---- subscriptions -------------------------------------------------------------------------------------

  private activeSubscription (externalId: string): SubscriptionRecord | undefined {
    return this.subscriptions.find((s) => s.external_id === externalId && s.status === 'active')
  }

  /**
   * POST /subscriptions: auto-creates an unknown customer; the same external_id and plan is returned unchanged;
   * another plan is an upgrade (now) or a downgrade (at the period's close).
   */
  createSubscription (body: unknown): { subscription: SubscriptionObject } {
    if (!isObject(body) || !isObject(body.subscription)) throw missingParam('subscription')
    const input = body.subscription
    const errors = new Errors()
    for (const field of ['external_customer_id', 'plan_code', 'external_id']) if (isBlank(input[field])) errors.add(field, 'value_is_mandatory')
    if (input.billing_time != null && !['calendar', 'anniversary'].includes(input.billing_time as string)) errors.add('billing_time', 'value_is_invalid')
    const subscriptionAt = input.subscription_at != null ? Date.parse(String(input.subscription_at)) : Date.now()
    if (Number.isNaN(subscriptionAt)) errors.add('subscription_at', 'invalid_date')
    errors.throwIfAny()
    const plan = this.requirePlan(String(input.plan_code))
    const externalId = String(input.external_id)
    const externalCustomerId = String(input.external_customer_id)
    let customer = this.customerByExternalId(externalCustomerId)

    let current = this.activeSubscription(externalId) ??
      this.subscriptions.find((s) => s.external_id === externalId && s.status === 'pending' && s.previous_plan_code === null)
    if (current !== undefined && (customer === undefined || current.customer_lago_id !== customer.lago_id)) throw validationFailure({ external_id: ['value_already_exist'] })
    if (customer !== undefined) {
      const currency = customer.fields.currency
      if (typeof currency === 'string' && currency !== plan.amount_currency) throw validationFailure({ currency: ['currencies_does_not_match'] })
    }
    if (current !== undefined && current.plan_code === plan.code) return { subscription: this.serializeSubscription(current) }
    if (current?.status === 'pending') {
      // A subscription that has not started yet is replaced rather than upgraded.
      current.status = 'canceled'
      current.canceled_at = isoSeconds()
      current = undefined
    }

    customer ??= this.upsertCustomerRecord(externalCustomerId)
    customer.fields.currency ??= plan.amount_currency
    const now = Date.now()
    const record: SubscriptionRecord = {
      lago_id: randomUUID(),
      external_id: externalId,
      customer_lago_id: customer.lago_id,
      external_customer_id: customer.external_id,
      plan_code: plan.code,
      name: strOrNull(input.name),
      status: subscriptionAt > now ? 'pending' : 'active',
      billing_time: (input.billing_time as SubscriptionRecord['billing_time'] | undefined) ?? 'calendar',
      subscription_at: isoSeconds(subscriptionAt),
      started_at: subscriptionAt > now ? null : isoSeconds(subscriptionAt),
      ending_at: strOrNull(input.ending_at),
      terminated_at: null,
      canceled_at: null,
      created_at: isoSeconds(now),
      previous_plan_code: null,
      next_plan_code: null,
      downgrade_plan_date: null,
      period_started_at: isoSeconds(subscriptionAt)
    }
    if (current !== undefined) {
      const currentPlan = this.planOf(current)
      if (yearlyAmountCents(plan.interval, plan.amount_cents) >= yearlyAmountCents(currentPlan.interval, currentPlan.amount_cents)) {
        // Upgrade: at once; the old subscription is terminated and invoiced.
        this.terminate(current, true)
        Object.assign(record, { status: 'active', started_at: isoSeconds(now), subscription_at: current.subscription_at, period_started_at: isoSeconds(now), previous_plan_code: current.plan_code })
      } else {
        // Downgrade: the next plan starts when the current period closes.
        this.subscriptions = this.subscriptions.filter((s) => !(s.external_id === externalId && s.status === 'pending'))
        current.next_plan_code = plan.code
        current.downgrade_plan_date = isoDate(calendarPeriodEnd(currentPlan.interval) + 1000)
        Object.assign(record, { status: 'pending', started_at: null, previous_plan_code: current.plan_code })
        this.subscriptions.push(record)
        return { subscription: this.serializeSubscription(current) }
      }
    }
    this.subscriptions.push(record)
    if (record.status === 'active') this.onWebhook('subscription.started', 'subscription', this.subscriptionWebhookObject(record))
    return { subscription: this.serializeSubscription(record) }
  }

  /** subscription.* webhooks carry the subscription with its customer and plan. */
  private subscriptionWebhookObject (s: SubscriptionRecord): unknown {
    const customer = this.customers.get(s.customer_lago_id)
    return { ...this.serializeSubscription(s), customer: customer !== undefined ? this.serializeCustomer(customer) : null, plan: serializePlan(this.planOf(s), this.metricById) }
  }

  private cancel (s: SubscriptionRecord): void {
    s.status = 'canceled'
    s.canceled_at = isoSeconds()
    this.onWebhook('subscription.canceled', 'subscription', this.subscriptionWebhookObject(s))
  }

  private upsertCustomerRecord (externalId: string): CustomerRecord {
    this.upsertCustomer({ customer: { external_id: externalId } })
    return this.requireCustomer(externalId)
  }

  private findSubscription (externalId: string, status: string | undefined): SubscriptionRecord {
    const wanted = status ?? 'active'
    return found([...this.subscriptions].reverse().find((s) => s.external_id === externalId && s.status === wanted), 'subscription')
  }

  getSubscription (externalId: string, query: Query): { subscription: SubscriptionObjectExtended } {
    const s = this.findSubscription(externalId, one(query, 'status'))
    return { subscription: { ...this.serializeSubscription(s), plan: serializePlan(this.planOf(s), this.metricById) } }
  }

  /** GET /subscriptions: active only unless status[] says otherwise. */
  listSubscriptions (query: Query): { subscriptions: SubscriptionObject[], meta: ReturnType<typeof paginate>['meta'] } {
    const statuses = many(query, 'status') ?? ['active']
    const customer = one(query, 'external_customer_id')
    const planCode = one(query, 'plan_code')
    const externalId = one(query, 'external_id')
    const list = this.subscriptions.filter((s) => statuses.includes(s.status) &&
      (customer === undefined || s.external_customer_id === customer) && (planCode === undefined || s.plan_code === planCode) &&
      (externalId === undefined || s.external_id === externalId)).reverse()
    const { items, meta } = paginate(list, query)
    return { subscriptions: items.map((s) => this.serializeSubscription(s)), meta }
  }

  updateSubscription (externalId: string, body: unknown, query: Query): { subscription: SubscriptionObject } {
    const s = this.findSubscription(externalId, one(query, 'status'))
    if (!isObject(body) || !isObject(body.subscription)) throw missingParam('subscription')
    const input = body.subscription
    if (input.name !== undefined) s.name = strOrNull(input.name)
    if (input.ending_at !== undefined) s.ending_at = strOrNull(input.ending_at)
    if (input.subscription_at !== undefined && s.status === 'pending') {
      const at = Date.parse(String(input.subscription_at))
      if (Number.isNaN(at)) throw validationFailure({ subscription_at: ['invalid_date'] })
      s.subscription_at = isoSeconds(at)
    }
    return { subscription: this.serializeSubscription(s) }
  }

  /** DELETE /subscriptions/:id: terminates the active one (status=pending cancels the pending one). */
  terminateSubscription (externalId: string, query: Query): { subscription: SubscriptionObject } {
    if (one(query, 'status') === 'pending') {
      const pending = this.findSubscription(externalId, 'pending')
      this.cancel(pending)
      return { subscription: this.serializeSubscription(pending) }
    }
    const s = this.activeSubscription(externalId)
    if (s === undefined) throw notFound('subscription')
    this.terminate(s, one(query, 'on_termination_invoice') !== 'skip')
    return { subscription: this.serializeSubscription(s) }
  }

  private terminate (s: SubscriptionRecord, invoice: boolean): void {
    if (invoice) this.invoicePeriod(s, {})
    s.status = 'terminated'
    s.terminated_at = isoSeconds()
    s.next_plan_code = null
    s.downgrade_plan_date = null
    this.onWebhook('subscription.terminated', 'subscription', this.subscriptionWebhookObject(s))
    for (const p of this.subscriptions) {
      if (p.external_id === s.external_id && p.status === 'pending') this.cancel(p)
    }
  }

  private serializeSubscription (s: SubscriptionRecord): SubscriptionObject {
    const plan = this.planOf(s)
    const active = s.status === 'active'
    return {
      lago_id: s.lago_id,
      external_id: s.external_id,
      lago_customer_id: s.customer_lago_id,
      external_customer_id: s.external_customer_id,
      billing_entity_code: 'default',
      billing_time: s.billing_time,
      name: s.name,
      plan_code: s.plan_code,
      plan_amount_cents: plan.amount_cents,
      plan_amount_currency: plan.amount_currency,
      status: s.status,
      created_at: s.created_at,
      canceled_at: s.canceled_at,
      started_at: s.started_at,
      ending_at: s.ending_at,
      subscription_at: s.subscription_at,
      terminated_at: s.terminated_at,
      previous_plan_code: s.previous_plan_code,
      next_plan_code: s.next_plan_code,
      downgrade_plan_date: s.downgrade_plan_date,
      trial_ended_at: null,
      current_billing_period_started_at: active ? s.period_started_at : null,
      current_billing_period_ending_at: active ? isoSeconds(calendarPeriodEnd(plan.interval)) : null,
      on_termination_credit_note: 'credit',
      on_termination_invoice: 'generate',
      consolidate_invoice: false,
      purchase_order_number: null
    } satisfies SubscriptionObject
  }

  // ---- usage ---------------------------------------------------------------------------------------------

  private subscriptionUsage (s: SubscriptionRecord): { plan: PlanRecord, charges: ChargeUsage[], events: EventRecord[] } {
    const plan = this.planOf(s)
    const from = Date.parse(s.period_started_at)
    const end = s.terminated_at !== null ? Date.parse(s.terminated_at) + 999 : Infinity
    const events = (this.eventsBySubscription.get(s.external_id) ?? []).filter((e) => !e.invoiced && e.timestamp_ms >= from && e.timestamp_ms <= end)
    const charges = plan.charges.map((charge) => {
      const metric = this.metricById(charge.billable_metric_id)
      return chargeUsage(charge, metric, events.filter((e) => e.code === metric.code), plan.amount_currency)
    })
    return { plan, charges, events }
  }

  /** GET /customers/:id/current_usage?external_subscription_id=…, computed from the received events. */
  currentUsage (externalCustomerId: string, query: Query): { customer_usage: CustomerUsageObject } {
    const customer = this.requireCustomer(externalCustomerId)
    const subscriptionId = one(query, 'external_subscription_id')
    const s = subscriptionId === undefined ? undefined : this.activeSubscription(subscriptionId)
    if (s === undefined || s.customer_lago_id !== customer.lago_id) throw notAllowed('no_active_subscription')
    const { plan, charges } = this.subscriptionUsage(s)
    const periodEnd = calendarPeriodEnd(plan.interval)
    const amountCents = charges.reduce((n, c) => n + c.amountCents, 0)
    return {
      customer_usage: {
        from_datetime: s.period_started_at,
        to_datetime: isoSeconds(periodEnd),
        issuing_date: isoDate(periodEnd + 1000),
        lago_invoice_id: null,
        currency: plan.amount_currency,
        amount_cents: amountCents,
        taxes_amount_cents: 0,
        total_amount_cents: amountCents,
        charges_usage: charges.map((c) => serializeChargeUsage(c, plan.amount_currency))
      } satisfies CustomerUsageObject
    }
  }

  // ---- invoices ------------------------------------------------------------------------------------------

  /**
   * Control: closes the subscription's current period as Lago's billing clock would, issuing a finalized
   * invoice with one fee per charge (filter and group) plus the plan's fee, then starts a new period. A pending
   * downgrade takes over.
   */
  closePeriod (externalSubscriptionId: string, options: ClosePeriodOptions = {}): { invoice: InvoiceObjectExtended } {
    const s = this.activeSubscription(externalSubscriptionId)
    if (s === undefined) throw notFound('subscription')
    const invoice = this.invoicePeriod(s, options)
    s.period_started_at = isoSeconds()
    if (s.next_plan_code !== null) {
      const next = this.subscriptions.find((p) => p.external_id === s.external_id && p.status === 'pending')
      s.status = 'terminated'
      s.terminated_at = isoSeconds()
      if (next !== undefined) Object.assign(next, { status: 'active', started_at: isoSeconds(), period_started_at: isoSeconds() })
    }
    return { invoice }
  }

  private invoicePeriod (s: SubscriptionRecord, options: ClosePeriodOptions): InvoiceObjectExtended {
    const { plan, charges, events } = this.subscriptionUsage(s)
    const customer = this.customers.get(s.customer_lago_id)
    if (customer === undefined) throw new Error(`subscription ${s.external_id} has no customer`)
    const lagoId = randomUUID()
    const now = Date.now()
    const currency = plan.amount_currency
    const fromDate = s.period_started_at
    const toDate = isoSeconds(now)
    const base = {
      lago_invoice_id: lagoId,
      lago_subscription_id: s.lago_id,
      lago_customer_id: customer.lago_id,
      external_customer_id: customer.external_id,
      external_subscription_id: s.external_id,
      amount_currency: currency,
      total_amount_currency: currency,
      taxes_amount_cents: 0,
      taxes_rate: 0,
      pay_in_advance: false,
      invoiceable: true,
      from_date: fromDate,
      to_date: toDate,
      payment_status: 'pending',
      created_at: isoSeconds(now)
    } as const
    const fees: FeeObject[] = []
    if (plan.amount_cents > 0) {
      const precise = Decimal.from(plan.amount_cents).toString()
      fees.push({
        ...base,
        lago_id: randomUUID(),
        amount_cents: plan.amount_cents,
        precise_amount: Decimal.from(plan.amount_cents).shift(-currencyExponent(currency)).toString(),
        total_amount_cents: plan.amount_cents,
        units: '1.0',
        precise_unit_amount: Decimal.from(plan.amount_cents).shift(-currencyExponent(currency)).toString(),
        total_aggregated_units: '1.0',
        events_count: null,
        sub_total_excluding_taxes_amount_cents: plan.amount_cents,
        sub_total_excluding_taxes_precise_amount_cents: precise,
        applied_taxes: [],
        item: { type: 'subscription', code: plan.code, name: plan.name, invoice_display_name: plan.invoice_display_name ?? plan.name, lago_item_id: s.lago_id, item_type: 'Subscription' }
      })
    }
    for (const usage of charges) {
      const metric = usage.metric
      for (const bucket of usage.buckets) {
        if (bucket.aggregation.eventsCount === 0 && bucket.amountCents === 0) continue
        const units = bucket.aggregation.units
        const precise = bucket.amount.shift(currencyExponent(currency))
        fees.push({
          ...base,
          lago_id: randomUUID(),
          lago_charge_id: usage.charge.lago_id,
          amount_cents: bucket.amountCents,
          precise_amount: bucket.amount.toString(),
          total_amount_cents: bucket.amountCents,
          units: units.toFixedMin(1),
          precise_unit_amount: units.isZero() ? '0.0' : bucket.amount.dividedBy(units, 15).toString(),
          total_aggregated_units: units.toFixedMin(1),
          events_count: bucket.aggregation.eventsCount,
          sub_total_excluding_taxes_amount_cents: bucket.amountCents,
          sub_total_excluding_taxes_precise_amount_cents: precise.toString(),
          applied_taxes: [],
          item: {
            type: 'charge',
            code: metric.code,
            name: metric.name,
            invoice_display_name: usage.charge.invoice_display_name ?? metric.name,
            filter_invoice_display_name: bucket.filterDisplayName,
            filters: bucket.filterValues,
            lago_item_id: metric.lago_id,
            item_type: 'BillableMetric',
            ...(bucket.groupedBy !== null ? { grouped_by: Object.fromEntries(Object.entries(bucket.groupedBy).map(([k, v]) => [k, v ?? ''])) } : {})
          }
        })
      }
    }
    for (const e of events) e.invoiced = true
    const feesCents = fees.reduce((n, f) => n + f.amount_cents, 0)
    const sequence = ++this.invoiceSequence
    const customerInvoices = this.invoices.filter((i) => i.customer_lago_id === customer.lago_id).length + 1
    const invoice: InvoiceObjectExtended = {
      lago_id: lagoId,
      billing_entity_code: 'default',
      sequential_id: sequence,
      number: `${customer.slug}-${String(customerInvoices).padStart(3, '0')}`,
      issuing_date: options.issuing_date ?? isoDate(now),
      payment_due_date: options.issuing_date ?? isoDate(now),
      payment_overdue: false,
      net_payment_term: 0,
      invoice_type: 'subscription',
      status: options.status ?? 'finalized',
      payment_status: options.payment_status ?? 'pending',
      currency,
      fees_amount_cents: feesCents,
      coupons_amount_cents: 0,
      credit_notes_amount_cents: 0,
      sub_total_excluding_taxes_amount_cents: feesCents,
      taxes_amount_cents: 0,
      sub_total_including_taxes_amount_cents: feesCents,
      prepaid_credit_amount_cents: 0,
      progressive_billing_credit_amount_cents: 0,
      total_amount_cents: feesCents,
      total_due_amount_cents: feesCents,
      version_number: 4,
      self_billed: false,
      file_url: options.file_url ?? null,
      web_url: null,
      created_at: isoSeconds(now),
      updated_at: isoSeconds(now),
      customer: this.serializeCustomer(customer),
      subscriptions: [this.serializeSubscription(s)],
      fees,
      credits: [],
      metadata: [],
      applied_taxes: []
    }
    this.invoices.push({ object: invoice, customer_lago_id: customer.lago_id })
    this.onWebhook('invoice.created', 'invoice', invoice)
    return invoice
  }

  private requireInvoice (lagoId: string): InvoiceRecord {
    return found(this.invoices.find((i) => i.object.lago_id === lagoId), 'invoice')
  }

  /** Control: changes an invoice's status, payment status, issuing date or PDF URL. */
  updateInvoice (lagoId: string, patch: InvoicePatch): { invoice: InvoiceObjectExtended } {
    const { object } = this.requireInvoice(lagoId)
    const paymentChanged = patch.payment_status !== undefined && patch.payment_status !== object.payment_status
    const generated = patch.file_url != null && patch.file_url !== object.file_url
    if (patch.status !== undefined) object.status = patch.status
    if (patch.payment_status !== undefined) object.payment_status = patch.payment_status
    if (patch.issuing_date !== undefined) object.issuing_date = patch.issuing_date
    if (patch.file_url !== undefined) object.file_url = patch.file_url
    object.updated_at = isoSeconds()
    if (paymentChanged) this.onWebhook('invoice.payment_status_updated', 'invoice', object)
    if (generated) this.onWebhook('invoice.generated', 'invoice', object)
    return { invoice: object }
  }

  /** Control: makes the invoice's PDF available at a URL this simulator serves. */
  generateInvoicePdf (lagoId: string): { invoice: InvoiceObjectExtended } {
    return this.updateInvoice(lagoId, { file_url: `${this.publicUrl}/__simulator/files/invoices/${lagoId}.pdf` })
  }

  hasInvoice (lagoId: string): boolean {
    return this.invoices.some((i) => i.object.lago_id === lagoId)
  }

  getInvoice (lagoId: string): { invoice: InvoiceObjectExtended } {
    return { invoice: this.requireInvoice(lagoId).object }
  }

  /** POST /invoices/:id/download: finalized only; null (Lago's empty 200) while there is no PDF. */
  downloadInvoice (lagoId: string): { invoice: InvoiceObjectExtended } | null {
    const { object } = this.requireInvoice(lagoId)
    if (object.status !== 'finalized') throw notFound('invoice')
    return object.file_url != null ? { invoice: object } : null
  }

  /** GET /invoices and GET /customers/:id/invoices. */
  listInvoices (query: Query, externalCustomerId?: string): { invoices: InvoiceObjectExtended[], meta: ReturnType<typeof paginate>['meta'] } {
    const customerId = externalCustomerId ?? one(query, 'external_customer_id')
    if (externalCustomerId !== undefined) this.requireCustomer(externalCustomerId)
    const statuses = many(query, 'statuses', 'status')
    const paymentStatuses = many(query, 'payment_statuses', 'payment_status')
    const from = one(query, 'issuing_date_from')
    const to = one(query, 'issuing_date_to')
    const type = one(query, 'invoice_type')
    const currency = one(query, 'currency')
    const list = this.invoices.map((i) => i.object).filter((i) =>
      (customerId === undefined || i.customer?.external_id === customerId) &&
      (statuses === undefined || statuses.includes(i.status)) &&
      (paymentStatuses === undefined || paymentStatuses.includes(i.payment_status)) &&
      (from === undefined || i.issuing_date >= from) && (to === undefined || i.issuing_date <= to) &&
      (type === undefined || i.invoice_type === type) && (currency === undefined || i.currency === currency)).reverse()
    const { items, meta } = paginate(list, query)
    return { invoices: items, meta }
  }

  /** Counts for a quick look (control API). */
  summary (): Record<string, number> {
    return {
      customers: [...this.customers.values()].filter((c) => !c.deleted).length,
      billable_metrics: [...this.metrics.values()].filter((m) => !m.deleted).length,
      plans: [...this.plans.values()].filter((p) => !p.deleted).length,
      active_subscriptions: this.subscriptions.filter((s) => s.status === 'active').length,
      events: this.eventList.length,
      invoices: this.invoices.length
    }
  }
}

/** The first record not soft-deleted that matches. */
function live<T extends { deleted: boolean }> (records: Map<string, T>, match: (record: T) => boolean): T | undefined {
  for (const record of records.values()) if (!record.deleted && match(record)) return record
  return undefined
}

/** The record, or Lago's 404 `<resource>_not_found`. */
function found<T> (record: T | undefined, resource: string): T {
  if (record === undefined) throw notFound(resource)
  return record
}

const eventKey = (subscriptionId: string | null, transactionId: string): string => `${subscriptionId ?? ''}\u0000${transactionId}`

function serializeChargeUsage (c: ChargeUsage, currency: Currency): CustomerChargeUsageObject {
  const units = c.units.toFixedMin(1)
  const hasFilters = c.charge.filters.length > 0
  const grouped = c.buckets.some((b) => b.groupedBy !== null)
  const filterRows = (buckets: typeof c.buckets): NonNullable<CustomerChargeUsageObject['filters']> => {
    const rows = new Map<string, { b: typeof c.buckets[number], units: Decimal, cents: number, count: number }>()
    for (const b of buckets) {
      const key = JSON.stringify(b.filterValues)
      const row = rows.get(key)
      if (row === undefined) rows.set(key, { b, units: b.aggregation.units, cents: b.amountCents, count: b.aggregation.eventsCount })
      else Object.assign(row, { units: row.units.plus(b.aggregation.units), cents: row.cents + b.amountCents, count: row.count + b.aggregation.eventsCount })
    }
    return [...rows.values()].map(({ b, units, cents, count }) => ({
      units: units.toFixedMin(1),
      total_aggregated_units: units.toFixedMin(1),
      amount_cents: cents,
      events_count: count,
      ...(b.filterDisplayName !== null ? { invoice_display_name: b.filterDisplayName } : {}),
      values: b.filterValues ?? {}
    }))
  }
  const groups = new Map<string, typeof c.buckets>()
  if (grouped) for (const b of c.buckets) groups.set(JSON.stringify(b.groupedBy), [...(groups.get(JSON.stringify(b.groupedBy)) ?? []), b])
  return {
    units,
    total_aggregated_units: units,
    events_count: c.eventsCount,
    amount_cents: c.amountCents,
    amount_currency: currency,
    charge: {
      lago_id: c.charge.lago_id,
      // The spec's enum for this field omits dynamic and graduated_percentage; Lago sends the charge's model.
      charge_model: c.charge.charge_model as CustomerChargeUsageObject['charge']['charge_model'],
      invoice_display_name: c.charge.invoice_display_name
    },
    billable_metric: { lago_id: c.metric.lago_id, name: c.metric.name, code: c.metric.code, aggregation_type: c.metric.aggregation_type },
    filters: hasFilters ? filterRows(c.buckets) : [],
    grouped_usage: [...groups.values()].map((buckets) => {
      const u = Decimal.sum(buckets.map((b) => b.aggregation.units)).toFixedMin(1)
      return {
        amount_cents: buckets.reduce((n, b) => n + b.amountCents, 0),
        events_count: buckets.reduce((n, b) => n + b.aggregation.eventsCount, 0),
        units: u,
        total_aggregated_units: u,
        grouped_by: Object.fromEntries(Object.entries(buckets[0].groupedBy ?? {}).map(([k, v]) => [k, v ?? ''])),
        filters: hasFilters ? filterRows(buckets) : []
      }
    }),
    presentation_breakdowns: []
  } satisfies CustomerChargeUsageObject
}
