import { sql, type Kysely, type Selectable } from 'kysely'
import { DEFAULT_ORGANIZATION_ID, type Database, type LagoWebhookTable } from '../../../db/database.js'
import { jsonbArray } from '../../../db/json-array.js'

export interface IncomingWebhook {
  /** Ours: the organization the webhook was routed to (and verified with). */
  organization: string
  uniqueKey: string
  webhookType: string
  objectType: string
  /** Lago's id of the organization, as the body names it. */
  lagoOrganizationId: string | null
  signatureAlgo: string
  customerExternalId: string | null
  body: Record<string, unknown>
}

/** A stored webhook as read back: the table's row. */
export type StoredWebhookRow = Selectable<LagoWebhookTable>

/** Stores a webhook once per organization and unique key; a repeat (Lago's retry) stores nothing. */
export async function storeWebhook (db: Kysely<Database>, w: IncomingWebhook): Promise<{ id: number, duplicate: boolean }> {
  const inserted = await db.insertInto('lago_webhooks').values({
    organization_id: w.organization,
    unique_key: w.uniqueKey,
    webhook_type: w.webhookType,
    object_type: w.objectType,
    lago_organization_id: w.lagoOrganizationId,
    signature_algo: w.signatureAlgo,
    customer_external_id: w.customerExternalId,
    body: JSON.stringify(w.body)
  }).onConflict((oc) => oc.columns(['organization_id', 'unique_key']).doNothing()).returning('id').executeTakeFirst()
  if (inserted !== undefined) return { id: Number(inserted.id), duplicate: false }
  const existing = await db.selectFrom('lago_webhooks').select('id').where('organization_id', '=', w.organization).where('unique_key', '=', w.uniqueKey).executeTakeFirstOrThrow()
  return { id: Number(existing.id), duplicate: true }
}

export interface WebhookFilter {
  /** Only this organization's webhooks. */
  organization: string
  types?: string[]
  customerId?: string
  from?: Date
  to?: Date
  page: number
  perPage: number
}

/** One organization's, newest first (its (organization_id, id) index). */
export async function listWebhooks (db: Kysely<Database>, f: WebhookFilter): Promise<{ rows: StoredWebhookRow[], total: number }> {
  let q = db.selectFrom('lago_webhooks').where('organization_id', '=', f.organization)
  if (f.types !== undefined && f.types.length > 0) q = q.where('webhook_type', 'in', f.types)
  if (f.customerId !== undefined) q = q.where('customer_external_id', '=', f.customerId)
  if (f.from !== undefined) q = q.where('received_at', '>=', f.from)
  if (f.to !== undefined) q = q.where('received_at', '<', f.to)
  const [rows, count] = await Promise.all([
    q.selectAll().orderBy('id', 'desc').limit(f.perPage).offset((f.page - 1) * f.perPage).execute(),
    q.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()
  ])
  return { rows: rows.map((r) => ({ ...r, id: Number(r.id) })) as StoredWebhookRow[], total: Number(count.n) }
}

export async function countUnprocessed (db: Kysely<Database>): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM lago_webhooks WHERE processed_at IS NULL`.execute(db)
  return rows[0].n
}

export async function countLagoErrors (db: Kysely<Database>): Promise<number> {
  const { rows } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM litellm_usage_events WHERE status = 'lago_error'`.execute(db)
  return rows[0].n
}

/**
 * Runs `act` on the oldest webhook not yet acted on, inside one transaction that also marks it processed: the act
 * (database writes only, never a network call) and its record commit together or not at all. Other replicas skip
 * the row while it is held. Returns null when nothing is due, else the act's result.
 */
export async function processNext<T> (db: Kysely<Database>, act: (trx: Kysely<Database>, row: StoredWebhookRow) => Promise<T>): Promise<{ id: number, result: T } | { id: number, error: unknown } | null> {
  let claimed: number | null = null
  try {
    return await db.transaction().execute(async (trx) => {
      const { rows } = await sql<StoredWebhookRow>`
        SELECT * FROM lago_webhooks WHERE processed_at IS NULL AND next_attempt_at <= now()
         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`.execute(trx)
      if (rows.length === 0) return null
      const row = { ...rows[0], id: Number(rows[0].id) }
      claimed = row.id
      const result = await act(trx, row)
      await sql`UPDATE lago_webhooks SET processed_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ${row.id}`.execute(trx)
      return { id: row.id, result }
    })
  } catch (err) {
    if (claimed === null) throw err
    // The act was rolled back: tried again later, with backoff.
    await sql`
      UPDATE lago_webhooks SET attempts = attempts + 1, last_error = ${err instanceof Error ? err.message : String(err)},
             next_attempt_at = now() + make_interval(secs => least(300, power(2, attempts)))
       WHERE id = ${claimed}`.execute(db)
    return { id: claimed, error: err }
  }
}

/** The reasons Lago gives for events it stored but cannot bill, each with the transaction ids (our request ids). */
export type LagoEventErrors = Array<{ reason: string, transactionIds: string[], detail?: unknown }>

/**
 * Marks our events named by Lago as lago_error, keeping Lago's reason. Only events Lago can hold (sent at least
 * once: not unmapped nor not_billable). A claim in flight ends first (claim before event, as the forwarder's settle
 * does), so that its settle cannot overwrite the status; what it froze moves into the event, whatever the event's
 * status. Three statements, in the caller's transaction (actOn's).
 */
export async function markLagoErrors (trx: Kysely<Database>, organization: string, errors: LagoEventErrors, webhookKey: string): Promise<number> {
  let marked = 0
  for (const { reason, transactionIds, detail } of errors) {
    if (transactionIds.length === 0) continue
    const error = JSON.stringify({ kind: 'lago_error', reason, message: `Lago cannot bill this event: ${reason}`, webhook: webhookKey, ...(detail !== undefined ? { lago: detail } : {}) })
    const named = sql`SELECT event_id FROM usage_event_keys WHERE organization_id = ${organization} AND request_id = ANY(${transactionIds}::text[])`
    // Only claims whose event is in the table (a month detached by retention comes back later, and its claims with
    // their bodies must wait for it).
    const { rows: ended } = await sql<{ event_id: number, received_at: string, external_subscription_id: string | null, lago_payload: unknown }>`
        DELETE FROM usage_event_claims c USING litellm_usage_events e
         WHERE c.organization_id = ${organization} AND c.event_id IN (${named}) AND e.id = c.event_id AND e.received_at = c.received_at
        RETURNING c.event_id, c.received_at::text AS received_at, c.external_subscription_id, c.lago_payload`.execute(trx)
    const endedIds = ended.map((c) => c.event_id)
    const endedSubscriptions = ended.map((c) => c.external_subscription_id)
    const endedBodies = jsonbArray(ended.map((c) => c.lago_payload))
    const { numAffectedRows } = await sql`
        UPDATE litellm_usage_events e
           SET status = 'lago_error', last_error = ${error}::jsonb,
               external_subscription_id = coalesce(e.external_subscription_id, f.subscription),
               lago_payload = coalesce(e.lago_payload, f.body)
          FROM (SELECT k.event_id, c.subscription, c.body FROM (${named}) k
                  LEFT JOIN unnest(${endedIds}::bigint[], ${endedSubscriptions}::text[], ${endedBodies}) AS c(event_id, subscription, body)
                    ON c.event_id = k.event_id) f
         WHERE e.organization_id = ${organization} AND e.id = f.event_id
           AND e.status IN ('forwarded', 'pending', 'failed', 'dead')`.execute(trx)
    marked += Number(numAffectedRows ?? 0)
    // An ended claim of an event not marked here (marked by an earlier webhook already): its body moves in all the same.
    if (ended.length > 0) {
      await sql`
        UPDATE litellm_usage_events e
           SET external_subscription_id = coalesce(e.external_subscription_id, c.subscription), lago_payload = coalesce(e.lago_payload, c.body)
          FROM unnest(${endedIds}::bigint[], ${ended.map((c) => c.received_at)}::timestamptz[], ${endedSubscriptions}::text[], ${endedBodies})
            AS c(event_id, received_at, subscription, body)
         WHERE e.id = c.event_id AND e.received_at = c.received_at AND e.status NOT IN ('forwarded', 'pending', 'failed', 'dead')
           AND c.body IS NOT NULL AND e.lago_payload IS NULL`.execute(trx)
    }
  }
  return marked
}

export interface InvoiceFacts {
  lagoId: string
  customerExternalId: string | null
  number: string
  issuingDate: string
  paymentDueDate: string | null
  status: string
  paymentStatus: string
  paymentOverdue: boolean
  invoiceType: string
  currency: string | null
  feesAmountCents: number
  taxesAmountCents: number
  totalAmountCents: number
  fileUrl: string | null
  createdAt: string
  updatedAt: string | null
}

/**
 * Keeps the invoice as its latest webhook describes it: an older description (webhooks can arrive out of order)
 * never overwrites a newer one, nor one of the same second that is further along. An invoice whose customer is unknown here and not named is skipped.
 */
export async function recordInvoice (db: Kysely<Database>, organization: string, i: InvoiceFacts): Promise<boolean> {
  const { numAffectedRows } = await sql`
    INSERT INTO lago_invoices (organization_id, lago_id, customer_external_id, number, issuing_date, payment_due_date, status, payment_status,
                               payment_overdue, invoice_type, currency, fees_amount_cents, taxes_amount_cents, total_amount_cents,
                               file_url, lago_created_at, lago_updated_at)
    SELECT ${organization}, ${i.lagoId}, coalesce(${i.customerExternalId}::text, (SELECT customer_external_id FROM lago_invoices WHERE organization_id = ${organization} AND lago_id = ${i.lagoId})),
           ${i.number}, ${i.issuingDate}, ${i.paymentDueDate}, ${i.status}, ${i.paymentStatus}, ${i.paymentOverdue}, ${i.invoiceType},
           ${i.currency}, ${i.feesAmountCents}, ${i.taxesAmountCents}, ${i.totalAmountCents}, ${i.fileUrl}, ${i.createdAt},
           ${i.updatedAt}::timestamptz
     WHERE coalesce(${i.customerExternalId}::text, (SELECT customer_external_id FROM lago_invoices WHERE organization_id = ${organization} AND lago_id = ${i.lagoId})) IS NOT NULL
    ON CONFLICT (organization_id, lago_id) DO UPDATE
       SET number = excluded.number, issuing_date = excluded.issuing_date, payment_due_date = excluded.payment_due_date,
           status = excluded.status, payment_status = excluded.payment_status,
           payment_overdue = excluded.payment_overdue OR (lago_invoices.payment_overdue AND excluded.payment_status <> 'succeeded'),
           invoice_type = excluded.invoice_type, currency = excluded.currency, fees_amount_cents = excluded.fees_amount_cents,
           taxes_amount_cents = excluded.taxes_amount_cents, total_amount_cents = excluded.total_amount_cents,
           file_url = coalesce(excluded.file_url, lago_invoices.file_url), lago_updated_at = excluded.lago_updated_at, recorded_at = now()
     WHERE lago_invoices.lago_updated_at IS NULL OR excluded.lago_updated_at IS NULL OR excluded.lago_updated_at > lago_invoices.lago_updated_at
        -- Lago's updated_at has whole seconds: two descriptions of one second arrive in either order. Between them, the
        -- one further along wins (never back to draft, never a settled payment back to pending).
        OR (excluded.lago_updated_at = lago_invoices.lago_updated_at
            AND NOT (excluded.status = 'draft' AND lago_invoices.status <> 'draft')
            AND NOT (excluded.payment_status = 'pending' AND lago_invoices.payment_status <> 'pending'))`.execute(db)
  return Number(numAffectedRows ?? 0) > 0
}

/** A customer's invoices as last recorded, newest first (the fallback while Lago is down). */
export async function localInvoices (db: Kysely<Database>, customerId: string, page: number, perPage: number, organizationId = DEFAULT_ORGANIZATION_ID): Promise<{ rows: Array<Record<string, unknown>>, total: number }> {
  const q = db.selectFrom('lago_invoices').where('organization_id', '=', organizationId).where('customer_external_id', '=', customerId)
  const [rows, count] = await Promise.all([
    q.selectAll().orderBy('issuing_date', 'desc').orderBy('lago_created_at', 'desc').limit(perPage).offset((page - 1) * perPage).execute(),
    q.select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()
  ])
  return { rows, total: Number(count.n) }
}
