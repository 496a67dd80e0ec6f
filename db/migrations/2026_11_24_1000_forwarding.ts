import { sql, type Kysely } from 'kysely'

export async function up (db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE litellm_usage_events
      -- Raised on every claim, never lowered: settling matches it, so a worker whose lease expired and whose
      -- events were claimed again cannot touch them any more.
      ADD COLUMN claim_token bigint NOT NULL DEFAULT 0,
      ADD COLUMN claimed_by text,
      ADD COLUMN lease_expires_at timestamptz,
      -- The Lago subscription and the exact event body of the first send; every resend reuses them, so Lago's
      -- deduplication (transaction_id + subscription, or + timestamp on ClickHouse) always recognises a resend.
      ADD COLUMN external_subscription_id text,
      ADD COLUMN lago_payload jsonb,
      DROP CONSTRAINT litellm_usage_events_status_check,
      ADD CONSTRAINT litellm_usage_events_status_check
        CHECK (status IN ('pending', 'failed', 'forwarded', 'dead', 'unmapped'))
  `.execute(db)
  await sql`CREATE INDEX litellm_usage_events_unmapped_idx ON litellm_usage_events (customer_external_id)
            WHERE status = 'unmapped'`.execute(db)

  // The body Lago receives for one usage event (POST /api/v1/events/batch item). Built in SQL so that the
  // claim that first sends an event also freezes its body in the same statement.
  await sql`
    CREATE FUNCTION lago_event_body(e litellm_usage_events, subscription text, metric_code text)
    RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
      SELECT jsonb_build_object(
        'transaction_id', e.request_id,
        'external_subscription_id', subscription,
        'code', metric_code,
        'timestamp', trim_scale(extract(epoch FROM e."timestamp")),
        'precise_total_amount_cents', trim_scale(e.cost_usd * 100)::text,
        'properties', jsonb_build_object(
          'tokens_input', e.tokens_input,
          'tokens_output', e.tokens_output,
          'total_tokens', e.total_tokens,
          'model', e.model,
          'provider', e.provider,
          'cost_usd', e.cost_usd::text
        )
      )
    $$`.execute(db)

  // The Lago customers this service bills, with the subscription their usage events go to.
  await db.schema.createTable('customers')
    .addColumn('external_id', 'text', (c) => c.primaryKey())
    .addColumn('lago_id', 'text')
    .addColumn('name', 'text')
    .addColumn('email', 'text')
    .addColumn('plan_code', 'text')
    .addColumn('subscription_external_id', 'text')
    .addColumn('provisioned_by', 'text', (c) => c.notNull().defaultTo('api'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()

  await sql`ALTER TABLE webhook_delivery_logs ADD COLUMN worker text`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE webhook_delivery_logs DROP COLUMN worker`.execute(db)
  await db.schema.dropTable('customers').execute()
  await sql`DROP FUNCTION lago_event_body(litellm_usage_events, text, text)`.execute(db)
  await sql`DROP INDEX litellm_usage_events_unmapped_idx`.execute(db)
  await sql`UPDATE litellm_usage_events SET status = 'pending' WHERE status = 'unmapped'`.execute(db)
  await sql`
    ALTER TABLE litellm_usage_events
      DROP CONSTRAINT litellm_usage_events_status_check,
      ADD CONSTRAINT litellm_usage_events_status_check CHECK (status IN ('pending', 'failed', 'forwarded', 'dead')),
      DROP COLUMN claim_token, DROP COLUMN claimed_by, DROP COLUMN lease_expires_at,
      DROP COLUMN external_subscription_id, DROP COLUMN lago_payload
  `.execute(db)
}
