import type { ChargeFilterObject } from 'lago-javascript-client'
import type {
  BillableMetricObject, CustomerObjectExtended, CustomerUsageObject, InvoiceObjectExtended, PaginationMeta, PlanObject,
  SubscriptionObject
} from '../lago/types.js'
import type { CustomerSummaryBody, SubscriptionBody } from '../../../schemas/customers.js'
import type { ChargeBody, PlanBody } from '../../../schemas/plans.js'
import type { MetricBody } from '../../../schemas/billable-metrics.js'
import type { InvoiceBody, InvoiceDetailBody } from '../../../schemas/invoices.js'
import type { CurrentUsageBody } from '../../../schemas/usage.js'
import type { Static } from '@sinclair/typebox'
import type { PageMeta } from '../../../schemas/common.js'

// Lago's objects in this API's documented shapes: what a client needs, nothing of Lago's internals.

export type PageMetaBody = Static<typeof PageMeta>

export function toPageMeta (meta: PaginationMeta | undefined, page: number, perPage: number): PageMetaBody {
  return {
    page,
    per_page: perPage,
    total_count: meta?.total_count ?? 0,
    total_pages: meta?.total_pages ?? 0,
    next_page: meta?.next_page ?? null,
    prev_page: meta?.prev_page ?? null
  }
}

export function toCustomerSummary (c: CustomerObjectExtended): CustomerSummaryBody {
  return {
    external_id: c.external_id,
    lago_id: c.lago_id,
    name: c.name ?? null,
    email: c.email ?? null,
    currency: c.currency ?? null,
    created_at: c.created_at
  }
}

export function toSubscription (s: SubscriptionObject): SubscriptionBody {
  return {
    external_id: s.external_id,
    plan_code: s.plan_code,
    status: s.status,
    started_at: s.started_at,
    current_billing_period_started_at: s.current_billing_period_started_at,
    current_billing_period_ending_at: s.current_billing_period_ending_at,
    next_plan_code: s.next_plan_code,
    downgrade_plan_date: s.downgrade_plan_date
  }
}

/** The subscription to show for a customer: the one usage goes to, else an active one, else a pending one. */
export function currentSubscription (subscriptions: SubscriptionObject[], preferredExternalId: string | null): SubscriptionObject | null {
  const rank = (s: SubscriptionObject): number => (s.status === 'active' ? 0 : 2) + (s.external_id === preferredExternalId ? 0 : 1)
  const candidates = subscriptions.filter((s) => s.status === 'active' || s.status === 'pending').sort((a, b) => rank(a) - rank(b))
  return candidates[0] ?? null
}

const filtersOf = (filters: ChargeFilterObject[] | undefined): ChargeBody['filters'] => (filters ?? []).map((f) => ({
  values: f.values as Record<string, string[]>,
  properties: (f.properties ?? {}) as Record<string, unknown>,
  invoice_display_name: f.invoice_display_name ?? null
}))

export function toPlan (p: PlanObject): PlanBody {
  return {
    lago_id: p.lago_id,
    code: p.code,
    name: p.name,
    description: p.description ?? null,
    invoice_display_name: p.invoice_display_name ?? null,
    interval: p.interval,
    amount_cents: p.amount_cents,
    amount_currency: p.amount_currency,
    pay_in_advance: p.pay_in_advance ?? false,
    trial_period: p.trial_period ?? null,
    created_at: p.created_at,
    charges: (p.charges ?? []).map((c) => ({
      id: c.lago_id,
      code: c.code ?? null,
      billable_metric_id: c.lago_billable_metric_id,
      billable_metric_code: c.billable_metric_code,
      charge_model: c.charge_model,
      invoice_display_name: c.invoice_display_name ?? null,
      pay_in_advance: c.pay_in_advance,
      invoiceable: c.invoiceable,
      min_amount_cents: c.min_amount_cents,
      properties: (c.properties ?? {}) as Record<string, unknown>,
      filters: filtersOf(c.filters)
    }))
  }
}

export function toMetric (m: BillableMetricObject): MetricBody {
  return {
    lago_id: m.lago_id,
    code: m.code,
    name: m.name,
    description: m.description ?? null,
    aggregation_type: m.aggregation_type,
    field_name: m.field_name ?? null,
    recurring: m.recurring,
    filters: (m.filters ?? []).map((f) => ({ key: f.key, values: f.values })),
    created_at: m.created_at
  }
}

export function toInvoice (i: InvoiceObjectExtended): InvoiceBody {
  return {
    lago_id: i.lago_id,
    number: i.number,
    issuing_date: i.issuing_date,
    payment_due_date: i.payment_due_date ?? null,
    status: i.status,
    payment_status: i.payment_status,
    invoice_type: i.invoice_type,
    currency: i.currency ?? null,
    fees_amount_cents: i.fees_amount_cents,
    taxes_amount_cents: i.taxes_amount_cents,
    total_amount_cents: i.total_amount_cents,
    file_url: i.file_url ?? null,
    created_at: i.created_at
  }
}

export function toInvoiceDetail (i: InvoiceObjectExtended): InvoiceDetailBody {
  return {
    ...toInvoice(i),
    customer_external_id: i.customer?.external_id ?? null,
    subscription_external_ids: (i.subscriptions ?? []).map((s) => s.external_id),
    fees: (i.fees ?? []).map((f) => ({
      item_type: f.item.type,
      code: f.item.code,
      name: f.item.invoice_display_name ?? f.item.name,
      units: f.units,
      events_count: f.events_count ?? null,
      amount_cents: f.amount_cents,
      precise_amount: f.precise_amount ?? null,
      currency: f.amount_currency
    }))
  }
}

export function toCurrentUsage (customerId: string, subscriptionId: string, u: CustomerUsageObject): CurrentUsageBody {
  return {
    customer_external_id: customerId,
    subscription_external_id: subscriptionId,
    from_datetime: u.from_datetime,
    to_datetime: u.to_datetime,
    issuing_date: u.issuing_date,
    currency: u.currency ?? null,
    amount_cents: u.amount_cents,
    taxes_amount_cents: u.taxes_amount_cents,
    total_amount_cents: u.total_amount_cents,
    charges: (u.charges_usage ?? []).map((c) => ({
      billable_metric_code: c.billable_metric.code,
      billable_metric_name: c.billable_metric.name,
      aggregation_type: c.billable_metric.aggregation_type,
      charge_model: c.charge.charge_model,
      units: c.units,
      events_count: c.events_count,
      amount_cents: c.amount_cents,
      groups: (c.grouped_usage ?? []).map((g) => ({
        values: Object.fromEntries(Object.entries(g.grouped_by ?? {}).map(([k, v]) => [k, String(v ?? '')])),
        units: g.units,
        events_count: g.events_count,
        amount_cents: g.amount_cents
      }))
    }))
  }
}
