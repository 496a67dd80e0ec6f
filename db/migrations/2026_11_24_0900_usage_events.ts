import { sql, type Kysely } from 'kysely'

// Migrations are frozen in time: they use Kysely<any>, never the application's Database type.
export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.createTable('litellm_usage_events')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('request_id', 'text', (c) => c.notNull().unique())
    .addColumn('customer_external_id', 'text', (c) => c.notNull())
    .addColumn('model', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull().defaultTo('usage'))
    .addColumn('tokens_input', 'bigint', (c) => c.notNull().defaultTo(0).check(sql`tokens_input >= 0`))
    .addColumn('tokens_output', 'bigint', (c) => c.notNull().defaultTo(0).check(sql`tokens_output >= 0`))
    .addColumn('total_tokens', 'bigint', (c) => c.notNull().defaultTo(0).check(sql`total_tokens >= 0`))
    // Unconstrained numeric: exact, keeps every digit the producer sent.
    .addColumn('cost_usd', 'numeric', (c) => c.notNull().defaultTo(0).check(sql`cost_usd >= 0`))
    .addColumn('api_key_hash', 'text')
    .addColumn('timestamp', 'timestamptz', (c) => c.notNull())
    .addColumn('received_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('metadata', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('pending')
      .check(sql`status IN ('pending', 'failed', 'forwarded', 'dead')`))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('last_error', 'jsonb')
    .addColumn('processed_at', 'timestamptz')
    .execute()

  // The forwarder's work queue: unsent events in arrival order.
  await sql`CREATE INDEX litellm_usage_events_unsent_idx ON litellm_usage_events (id)
            WHERE status IN ('pending', 'failed')`.execute(db)
  await db.schema.createIndex('litellm_usage_events_customer_time_idx')
    .on('litellm_usage_events').columns(['customer_external_id', 'timestamp']).execute()
  await db.schema.createIndex('litellm_usage_events_received_at_idx')
    .on('litellm_usage_events').column('received_at').execute()

  await db.schema.createTable('webhook_delivery_logs')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('endpoint', 'text', (c) => c.notNull())
    .addColumn('request_count', 'integer', (c) => c.notNull())
    .addColumn('http_status', 'integer')
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('webhook_delivery_logs_created_at_idx')
    .on('webhook_delivery_logs').column('created_at').execute()

  // Half-open range [from, to). Column names win over parameter names inside a SQL function,
  // hence the qualified aggregate_customer_usage.customer_external_id.
  await sql`
    CREATE FUNCTION aggregate_customer_usage(customer_external_id text, "from" timestamptz, "to" timestamptz)
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
       GROUP BY e.model
       ORDER BY e.model
    $$`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION IF EXISTS aggregate_customer_usage(text, timestamptz, timestamptz)`.execute(db)
  await db.schema.dropTable('webhook_delivery_logs').ifExists().execute()
  await db.schema.dropTable('litellm_usage_events').ifExists().execute()
}
