import { sql, type Kysely } from 'kysely'

// Frozen in time: Kysely<any>, no application imports.
export async function up (db: Kysely<any>): Promise<void> {
  // Every verified webhook Lago delivered, once per X-Lago-Unique-Key (constant across Lago's retries). Stored
  // before it is acted on; processed_at is set in the same transaction as the act, so a crash in between redoes it.
  await db.schema.createTable('lago_webhooks')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('unique_key', 'text', (c) => c.notNull().unique())
    .addColumn('webhook_type', 'text', (c) => c.notNull())
    .addColumn('object_type', 'text', (c) => c.notNull())
    .addColumn('organization_id', 'text')
    .addColumn('signature_algo', 'text', (c) => c.notNull())
    // The customer the object concerns, when it names one (filters the list, finds alerts and invoices).
    .addColumn('customer_external_id', 'text')
    .addColumn('body', 'jsonb', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('processed_at', 'timestamptz')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_error', 'text')
    .execute()
  await sql`CREATE INDEX lago_webhooks_unprocessed_idx ON lago_webhooks (id) WHERE processed_at IS NULL`.execute(db)
  await db.schema.createIndex('lago_webhooks_type_received_idx').on('lago_webhooks').columns(['webhook_type', 'received_at']).execute()
  await db.schema.createIndex('lago_webhooks_received_idx').on('lago_webhooks').column('received_at').execute()

  // Lago's invoices as its webhooks described them last: answers GET /api/customers/:id/invoices while Lago is down.
  await db.schema.createTable('lago_invoices')
    .addColumn('lago_id', 'text', (c) => c.primaryKey())
    .addColumn('customer_external_id', 'text', (c) => c.notNull())
    .addColumn('number', 'text', (c) => c.notNull())
    .addColumn('issuing_date', 'text', (c) => c.notNull())
    .addColumn('payment_due_date', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('payment_status', 'text', (c) => c.notNull())
    .addColumn('payment_overdue', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('invoice_type', 'text', (c) => c.notNull())
    .addColumn('currency', 'text')
    .addColumn('fees_amount_cents', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('taxes_amount_cents', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('total_amount_cents', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('file_url', 'text')
    .addColumn('lago_created_at', 'text', (c) => c.notNull())
    .addColumn('lago_updated_at', 'timestamptz')
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('lago_invoices_customer_idx').on('lago_invoices').columns(['customer_external_id', 'issuing_date']).execute()

  // What Lago's subscription webhooks told about the subscription a customer's usage goes to.
  await sql`
    ALTER TABLE customers
      ADD COLUMN subscription_lago_id text,
      ADD COLUMN subscription_started_at timestamptz,
      -- Set when Lago terminated or canceled the subscription: new events wait as unmapped with this reason
      -- instead of being provisioned a new subscription behind the operator's back.
      ADD COLUMN subscription_ended_at timestamptz,
      ADD COLUMN subscription_ended_reason text
  `.execute(db)

  await sql`
    ALTER TABLE litellm_usage_events
      -- lago_error: Lago stored the event but reported (event.error / events.errors) that it cannot bill it.
      DROP CONSTRAINT litellm_usage_events_status_check,
      ADD CONSTRAINT litellm_usage_events_status_check
        CHECK (status IN ('pending', 'failed', 'forwarded', 'dead', 'unmapped', 'not_billable', 'lago_error')),
      -- Known at forwarding time: Lago will never bill this event (e.g. it is older than the subscription's start).
      ADD COLUMN billing_warning jsonb
  `.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`UPDATE litellm_usage_events SET status = 'forwarded' WHERE status = 'lago_error'`.execute(db)
  await sql`
    ALTER TABLE litellm_usage_events
      DROP COLUMN billing_warning,
      DROP CONSTRAINT litellm_usage_events_status_check,
      ADD CONSTRAINT litellm_usage_events_status_check
        CHECK (status IN ('pending', 'failed', 'forwarded', 'dead', 'unmapped', 'not_billable'))
  `.execute(db)
  await sql`
    ALTER TABLE customers
      DROP COLUMN subscription_lago_id, DROP COLUMN subscription_started_at,
      DROP COLUMN subscription_ended_at, DROP COLUMN subscription_ended_reason
  `.execute(db)
  await db.schema.dropTable('lago_invoices').execute()
  await db.schema.dropTable('lago_webhooks').execute()
}
