import type { Kysely } from 'kysely'
import { forgetEndedSubscription, rememberCustomer, rememberStartedSubscription, type SubscriptionFacts } from '../../../db/customers.js'
import type { Database } from '../../../db/database.js'
import {
  markLagoErrors, recordInvoice,
  type InvoiceFacts, type LagoEventErrors, type StoredWebhookRow
} from './repository.js'

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const str = (v: unknown): string | null => typeof v === 'string' && v !== '' ? v : null
const int = (v: unknown): number => typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : Number.parseInt(String(v ?? 0), 10) || 0

/** The webhook types this service acts on; every other verified webhook is only recorded. */
export const ACTED_ON = [
  'event.error', 'events.errors', 'subscription.started', 'subscription.terminated', 'subscription.canceled',
  'customer.created', 'customer.updated', 'invoice.created', 'invoice.generated', 'invoice.payment_status_updated',
  'invoice.payment_overdue', 'invoice.voided'
] as const

/** Recorded for operators (GET /api/lago-webhooks?type=…): budgets and balances someone may need to act on. */
export const NOTICES = ['alert.triggered', 'wallet.depleted_ongoing_balance', 'subscription.usage_threshold_reached'] as const

/** The object of an envelope: under the key named by object_type. */
export const objectOf = (body: Obj): Obj | null => {
  const type = str(body.object_type)
  const object = type !== null ? body[type] : undefined
  return isObj(object) ? object : null
}

/** The Lago customer an object concerns, when it names one. */
export function customerOf (body: Obj): string | null {
  const o = objectOf(body)
  if (o === null) return null
  if (body.object_type === 'customer') return str(o.external_id)
  if (isObj(o.customer)) return str(o.customer.external_id)
  return str(o.external_customer_id)
}

/**
 * The events Lago says it cannot bill. events.errors lists transaction ids per reason. event.error names one
 * event; when its reason is a duplicate transaction_id, Lago holds (and bills) the first copy, so it is no error
 * of ours: nothing is returned for it.
 */
export function lagoEventErrors (body: Obj): LagoEventErrors {
  const o = objectOf(body)
  if (o === null) return []
  if (body.webhook_type === 'events.errors') {
    return Object.entries(o).filter(([, ids]) => Array.isArray(ids))
      .map(([reason, ids]) => ({ reason, transactionIds: (ids as unknown[]).filter((id): id is string => typeof id === 'string') }))
  }
  const event = isObj(o.event) ? o.event : null
  const transactionId = str(event?.transaction_id)
  if (transactionId === null) return []
  let detail: unknown = o.message
  if (typeof detail === 'string') {
    try { detail = JSON.parse(detail) } catch { /* a plain message */ }
  }
  const text = typeof detail === 'string' ? detail : JSON.stringify(detail ?? null)
  if (/value_already_exist/.test(text) && /transaction_id/.test(text)) return []
  const reason = isObj(detail) ? Object.values(detail).flat().filter((v): v is string => typeof v === 'string')[0] ?? 'event_error' : 'event_error'
  return [{ reason, transactionIds: [transactionId], detail }]
}

function subscriptionFacts (o: Obj): SubscriptionFacts | null {
  const externalId = str(o.external_id)
  const customer = str(o.external_customer_id) ?? (isObj(o.customer) ? str(o.customer.external_id) : null)
  if (externalId === null || customer === null) return null
  return {
    lagoId: str(o.lago_id),
    externalId,
    customerExternalId: customer,
    planCode: str(o.plan_code) ?? (isObj(o.plan) ? str(o.plan.code) : null),
    status: str(o.status) ?? 'unknown',
    startedAt: str(o.started_at),
    endedAt: str(o.terminated_at) ?? str(o.canceled_at)
  }
}

function invoiceFacts (o: Obj): InvoiceFacts | null {
  const lagoId = str(o.lago_id)
  if (lagoId === null) return null
  return {
    lagoId,
    customerExternalId: isObj(o.customer) ? str(o.customer.external_id) : null,
    number: str(o.number) ?? lagoId,
    issuingDate: str(o.issuing_date) ?? '',
    paymentDueDate: str(o.payment_due_date),
    status: str(o.status) ?? 'unknown',
    paymentStatus: str(o.payment_status) ?? 'pending',
    paymentOverdue: o.payment_overdue === true,
    invoiceType: str(o.invoice_type) ?? 'subscription',
    currency: str(o.currency),
    feesAmountCents: int(o.fees_amount_cents),
    taxesAmountCents: int(o.taxes_amount_cents),
    totalAmountCents: int(o.total_amount_cents),
    fileUrl: str(o.file_url),
    createdAt: str(o.created_at) ?? new Date().toISOString(),
    updatedAt: str(o.updated_at)
  }
}

export interface ActResult {
  /** The organization it was for. */
  organization: string
  /** What was done, for the log. */
  outcome: string
  /** Customers whose unmapped events may now be sent (after the commit). */
  releaseCustomers: string[]
  lagoErrors: number
}

/** Acts on one stored webhook, with database writes only (the caller's transaction), within its organization. */
export async function actOn (trx: Kysely<Database>, row: StoredWebhookRow): Promise<ActResult> {
  const body = row.body
  const o = objectOf(body)
  const organization = row.organization_id
  const none = (outcome: string): ActResult => ({ organization, outcome, releaseCustomers: [], lagoErrors: 0 })
  if (o === null) return none('recorded (no object)')
  switch (row.webhook_type) {
    case 'event.error':
    case 'events.errors': {
      const errors = lagoEventErrors(body)
      const marked = await markLagoErrors(trx, row.organization_id, errors, row.unique_key)
      return { organization, outcome: `${marked} usage events marked lago_error`, releaseCustomers: [], lagoErrors: marked }
    }
    case 'subscription.terminated':
    case 'subscription.canceled': {
      const s = subscriptionFacts(o)
      if (s === null) return none('recorded (subscription without ids)')
      return none(await forgetEndedSubscription(trx, s, organization) ? `customer ${s.customerExternalId}'s subscription forgotten` : 'not the subscription in use')
    }
    case 'subscription.started': {
      const s = subscriptionFacts(o)
      if (s === null) return none('recorded (subscription without ids)')
      const used = await rememberStartedSubscription(trx, s, organization)
      return used ? { organization, outcome: `customer ${s.customerExternalId} now bills to ${s.externalId}`, releaseCustomers: [s.customerExternalId], lagoErrors: 0 } : none('customer already has another subscription')
    }
    case 'customer.created':
    case 'customer.updated': {
      const id = str(o.external_id)
      if (id === null) return none('recorded (customer without external_id)')
      await rememberCustomer(trx, { externalId: id, lagoId: str(o.lago_id), name: str(o.name), email: str(o.email) }, 'lago', organization)
      return none(`customer ${id} recorded`)
    }
    case 'invoice.created':
    case 'invoice.generated':
    case 'invoice.payment_status_updated':
    case 'invoice.payment_overdue':
    case 'invoice.voided': {
      const facts = invoiceFacts(o)
      if (facts === null) return none('recorded (invoice without lago_id)')
      if (row.webhook_type === 'invoice.payment_overdue') facts.paymentOverdue = true
      return none(await recordInvoice(trx, row.organization_id, facts) ? `invoice ${facts.number} recorded` : 'invoice not recorded (older, or customer unknown)')
    }
    default:
      return none('recorded')
  }
}
