import { sql, type Kysely } from 'kysely'

// Frozen in time: Kysely<any>, no application imports.
export async function up (db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE litellm_usage_events
      -- LiteLLM calls that failed are kept for the record but never sent to Lago.
      DROP CONSTRAINT litellm_usage_events_status_check,
      ADD CONSTRAINT litellm_usage_events_status_check
        CHECK (status IN ('pending', 'failed', 'forwarded', 'dead', 'unmapped', 'not_billable')),
      -- LiteLLM's id of the call as its spend logs know it (response id, else call id; cache hits normalized),
      -- and its x-litellm-call-id: together they recognise one call arriving through two formats.
      ADD COLUMN litellm_id text,
      ADD COLUMN litellm_call_id text
  `.execute(db)
  await sql`CREATE INDEX litellm_usage_events_litellm_id_idx ON litellm_usage_events (litellm_id, "timestamp")
            WHERE litellm_id IS NOT NULL`.execute(db)

  // Same signature and result as before; failed calls (not_billable) are not usage.
  await sql`
    CREATE OR REPLACE FUNCTION aggregate_customer_usage(customer_external_id text, "from" timestamptz, "to" timestamptz)
    RETURNS TABLE (
      model text,
      total_requests bigint,
      total_input_tokens bigint,
      total_output_tokens bigint,
      total_tokens bigint,
      total_cost_usd numeric
    )
    LANGUAGE sql STABLE AS $$
      SELECT e.model,
             count(*)::bigint,
             coalesce(sum(e.tokens_input), 0)::bigint,
             coalesce(sum(e.tokens_output), 0)::bigint,
             coalesce(sum(e.total_tokens), 0)::bigint,
             coalesce(sum(e.cost_usd), 0)
        FROM litellm_usage_events e
       WHERE e.customer_external_id = aggregate_customer_usage.customer_external_id
         AND e.timestamp >= aggregate_customer_usage."from"
         AND e.timestamp < aggregate_customer_usage."to"
         AND e.status <> 'not_billable'
       GROUP BY e.model
       ORDER BY e.model
    $$`.execute(db)

  // Which Lago customer a LiteLLM identity (end user, internal user, team, org, key alias, key hash) bills.
  await db.schema.createTable('customer_mappings')
    .addColumn('identity', 'text', (c) => c.notNull()
      .check(sql`identity IN ('end_user', 'user', 'team', 'org', 'key_alias', 'key_hash')`))
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('customer_external_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('customer_mappings_pkey', ['identity', 'value'])
    .execute()

  // LiteLLM's spend_tracked alerts: one row per customer call with its cost. A ledger to compare against, never billed.
  await db.schema.createTable('litellm_spend_ledger')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('customer_id', 'text')
    .addColumn('spend_usd', 'numeric', (c) => c.notNull())
    .addColumn('api_key_hash', 'text')
    .addColumn('key_alias', 'text')
    .addColumn('user_id', 'text')
    .addColumn('team_id', 'text')
    .addColumn('event_group', 'text')
    .addColumn('body_sha256', 'text', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('litellm_spend_ledger_customer_idx')
    .on('litellm_spend_ledger').columns(['customer_id', 'received_at']).execute()

  // Where reconciliation against LiteLLM's spend logs has got to, and which replica runs it (a lease).
  await db.schema.createTable('litellm_reconciliation')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('cursor', 'timestamptz')
    .addColumn('lease_owner', 'text')
    .addColumn('lease_until', 'timestamptz')
    .addColumn('last_run_at', 'timestamptz')
    .addColumn('last_success_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .addColumn('last_counts', 'jsonb')
    .execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('litellm_reconciliation').execute()
  await db.schema.dropTable('litellm_spend_ledger').execute()
  await db.schema.dropTable('customer_mappings').execute()
  await sql`
    CREATE OR REPLACE FUNCTION aggregate_customer_usage(customer_external_id text, "from" timestamptz, "to" timestamptz)
    RETURNS TABLE (model text, total_requests bigint, total_input_tokens bigint, total_output_tokens bigint,
                   total_tokens bigint, total_cost_usd numeric)
    LANGUAGE sql STABLE AS $$
      SELECT e.model, count(*)::bigint, coalesce(sum(e.tokens_input), 0)::bigint, coalesce(sum(e.tokens_output), 0)::bigint,
             coalesce(sum(e.total_tokens), 0)::bigint, coalesce(sum(e.cost_usd), 0)
        FROM litellm_usage_events e
       WHERE e.customer_external_id = aggregate_customer_usage.customer_external_id
         AND e.timestamp >= aggregate_customer_usage."from"
         AND e.timestamp < aggregate_customer_usage."to"
       GROUP BY e.model
       ORDER BY e.model
    $$`.execute(db)
  await sql`DROP INDEX litellm_usage_events_litellm_id_idx`.execute(db)
  // Failed calls were never billable: dropping the status must not make them billable.
  await sql`UPDATE litellm_usage_events SET status = 'dead', last_error = '{"kind":"not_billable","message":"LiteLLM call failed"}'::jsonb
             WHERE status = 'not_billable'`.execute(db)
  await sql`
    ALTER TABLE litellm_usage_events
      DROP CONSTRAINT litellm_usage_events_status_check,
      ADD CONSTRAINT litellm_usage_events_status_check
        CHECK (status IN ('pending', 'failed', 'forwarded', 'dead', 'unmapped')),
      DROP COLUMN litellm_id, DROP COLUMN litellm_call_id
  `.execute(db)
}
