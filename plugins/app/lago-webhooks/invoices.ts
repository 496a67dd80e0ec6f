import type { Kysely } from 'kysely'
import type { Database } from '../../../db/database.js'
import type { InvoiceListBody } from '../../../schemas/invoices.js'
import { localInvoices } from './repository.js'

/**
 * A customer's invoices from the local record kept from Lago's invoice webhooks, in the API's list shape; null
 * when nothing is recorded for the customer (then Lago's unavailability is the answer).
 */
export async function localInvoiceList (db: Kysely<Database>, customerId: string, page: number, perPage: number, organizationId?: string): Promise<InvoiceListBody | null> {
  const { rows, total } = await localInvoices(db, customerId, page, perPage, organizationId)
  if (total === 0) return null
  const totalPages = Math.ceil(total / perPage)
  return {
    invoices: rows.map((r) => ({
      lago_id: String(r.lago_id),
      number: String(r.number),
      issuing_date: String(r.issuing_date),
      payment_due_date: r.payment_due_date === null ? null : String(r.payment_due_date),
      status: String(r.status),
      payment_status: String(r.payment_status),
      invoice_type: String(r.invoice_type),
      currency: r.currency === null ? null : String(r.currency),
      fees_amount_cents: Number(r.fees_amount_cents),
      taxes_amount_cents: Number(r.taxes_amount_cents),
      total_amount_cents: Number(r.total_amount_cents),
      file_url: r.file_url === null ? null : String(r.file_url),
      created_at: String(r.lago_created_at)
    })),
    meta: { page, per_page: perPage, total_count: total, total_pages: totalPages, next_page: page < totalPages ? page + 1 : null, prev_page: page > 1 ? page - 1 : null },
    source: 'local'
  }
}
