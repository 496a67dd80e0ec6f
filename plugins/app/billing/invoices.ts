import type { LagoClient } from '../lago/client.js'
import type { CustomerInvoiceListQuery } from '../lago/types.js'
import { orNotFound } from '../lago/http-errors.js'
import { CustomerNotFoundError, InvoiceNotDownloadableError, InvoiceNotFoundError } from '../../../schemas/errors.js'
import type { InvoiceDetailBody, InvoiceDownloadBody, InvoiceListBody, InvoiceListQueryString } from '../../../schemas/invoices.js'
import { toInvoice, toInvoiceDetail, toPageMeta } from './mapping.js'

/** Lago's invoices, read through (statuses and payments change in Lago: never cached). */
export class InvoiceService {
  constructor (private readonly lago: LagoClient) {}

  async listForCustomer (customerId: string, query: InvoiceListQueryString): Promise<InvoiceListBody> {
    const { page = 1, per_page: perPage = 20, ...filters } = query
    const result = await orNotFound(this.lago.listCustomerInvoices(customerId, { page, per_page: perPage, ...filters } as CustomerInvoiceListQuery),
      () => new CustomerNotFoundError(customerId))
    return { invoices: result.invoices.map(toInvoice), meta: toPageMeta(result.meta, page, perPage) }
  }

  async get (id: string): Promise<InvoiceDetailBody> {
    return toInvoiceDetail(await orNotFound(this.lago.getInvoice(id), () => new InvoiceNotFoundError(id)))
  }

  /** The PDF's URL when Lago has it; otherwise Lago starts generating it and a later call returns the URL. */
  async download (id: string): Promise<InvoiceDownloadBody> {
    const invoice = await orNotFound(this.lago.downloadInvoice(id), () => new InvoiceNotDownloadableError(id))
    return invoice?.file_url != null
      ? { status: 'available', file_url: invoice.file_url, message: 'The invoice PDF is available at file_url' }
      : { status: 'generating', file_url: null, message: 'Lago is generating the PDF: ask again in a few seconds' }
  }
}
