import { Type, type Static } from '@sinclair/typebox'
import { DateTime, DecimalString, Nullable, PageMeta, PaginationQuery } from './common.js'

const InvoiceStatus = Type.Union(['draft', 'finalized', 'voided', 'failed', 'pending'].map((s) => Type.Literal(s)))
const PaymentStatus = Type.Union(['pending', 'succeeded', 'failed'].map((s) => Type.Literal(s)))
const Day = Type.String({ format: 'date', description: 'YYYY-MM-DD' })

export const InvoiceListQuery = Type.Object({
  ...PaginationQuery,
  status: Type.Optional(InvoiceStatus),
  payment_status: Type.Optional(PaymentStatus),
  issuing_date_from: Type.Optional(Day),
  issuing_date_to: Type.Optional(Day)
}, { additionalProperties: false })
export type InvoiceListQueryString = Static<typeof InvoiceListQuery>

export const InvoiceParams = Type.Object({ id: Type.String({ format: 'uuid', description: 'The invoice\'s lago_id' }) })

const invoiceFields = {
  lago_id: Type.String({ format: 'uuid' }),
  number: Type.String(),
  issuing_date: Type.String({ format: 'date' }),
  payment_due_date: Nullable(Type.String({ format: 'date' })),
  status: Type.String({ description: 'draft, finalized, voided, failed or pending' }),
  payment_status: Type.String({ description: 'pending, succeeded or failed' }),
  invoice_type: Type.String(),
  currency: Nullable(Type.String()),
  fees_amount_cents: Type.Integer(),
  taxes_amount_cents: Type.Integer(),
  total_amount_cents: Type.Integer({ description: 'What the customer owes, in cents' }),
  file_url: Nullable(Type.String({ description: 'The PDF, once Lago has generated it' })),
  created_at: DateTime
}

export const Invoice = Type.Object(invoiceFields)
export type InvoiceBody = Static<typeof Invoice>

export const InvoiceFee = Type.Object({
  item_type: Type.String({ description: 'subscription (the plan fee), charge (usage)...' }),
  code: Type.String(),
  name: Type.String(),
  units: DecimalString,
  events_count: Nullable(Type.Integer()),
  amount_cents: Type.Integer(),
  precise_amount: Nullable(DecimalString),
  currency: Type.String()
})

export const InvoiceDetail = Type.Object({
  ...invoiceFields,
  customer_external_id: Nullable(Type.String()),
  subscription_external_ids: Type.Array(Type.String()),
  fees: Type.Array(InvoiceFee)
})
export type InvoiceDetailBody = Static<typeof InvoiceDetail>

export const InvoiceList = Type.Object({
  invoices: Type.Array(Invoice),
  meta: PageMeta,
  source: Type.Optional(Type.Union([Type.Literal('lago'), Type.Literal('local')], {
    description: 'Who answered: lago, or local (Lago unreachable: the invoices as Lago\'s invoice webhooks last described them; filters other than paging are not applied)'
  }))
})
export type InvoiceListBody = Static<typeof InvoiceList>

export const InvoiceDownload = Type.Object({
  status: Type.Union([Type.Literal('available'), Type.Literal('generating')]),
  file_url: Nullable(Type.String()),
  message: Type.String()
})
export type InvoiceDownloadBody = Static<typeof InvoiceDownload>
