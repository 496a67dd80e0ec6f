import t from 'tap'
import { build, uid } from '../../../helpers/app.js'
import { recordInvoice, type InvoiceFacts } from '../../../../plugins/app/lago-webhooks/repository.js'

const invoice = (lagoId: string, over: Partial<InvoiceFacts>): InvoiceFacts => ({
  lagoId,
  customerExternalId: 'cus-order',
  number: 'N-1',
  issuingDate: '2026-11-01',
  paymentDueDate: null,
  status: 'finalized',
  paymentStatus: 'pending',
  paymentOverdue: false,
  invoiceType: 'subscription',
  currency: 'USD',
  feesAmountCents: 100,
  taxesAmountCents: 0,
  totalAmountCents: 100,
  fileUrl: null,
  createdAt: '2026-11-01T00:00:00Z',
  updatedAt: '2026-11-01T00:00:05Z',
  ...over
})

t.test('webhooks of one second arriving out of order: the description further along is kept', async (t) => {
  const app = await build(t, { FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false' })
  const stored = async (lagoId: string) => await app.db.selectFrom('lago_invoices').select(['status', 'payment_status']).where('lago_id', '=', lagoId).executeTakeFirstOrThrow()

  // Paid first, then the creation webhook of the same second.
  const paid = uid('inv')
  await recordInvoice(app.db, 'default', invoice(paid, { paymentStatus: 'succeeded' }))
  await recordInvoice(app.db, 'default', invoice(paid, { paymentStatus: 'pending' }))
  t.same(await stored(paid), { status: 'finalized', payment_status: 'succeeded' }, 'a settled payment does not go back to pending')

  // Finalized first, then the draft of the same second.
  const finalized = uid('inv')
  await recordInvoice(app.db, 'default', invoice(finalized, { status: 'finalized' }))
  await recordInvoice(app.db, 'default', invoice(finalized, { status: 'draft' }))
  t.same(await stored(finalized), { status: 'finalized', payment_status: 'pending' }, 'never back to draft')

  // A later second always wins, even going "back" (Lago said so).
  await recordInvoice(app.db, 'default', invoice(paid, { paymentStatus: 'failed', updatedAt: '2026-11-01T00:00:06Z' }))
  t.same(await stored(paid), { status: 'finalized', payment_status: 'failed' }, 'a newer second wins')
  // An older second never does.
  await recordInvoice(app.db, 'default', invoice(paid, { paymentStatus: 'succeeded', updatedAt: '2026-11-01T00:00:04Z' }))
  t.same(await stored(paid), { status: 'finalized', payment_status: 'failed' }, 'an older second is ignored')
})
