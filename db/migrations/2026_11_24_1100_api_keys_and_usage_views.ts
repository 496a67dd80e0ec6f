import { sql, type Kysely } from 'kysely'

// Usage totals per group over a half-open range [from, to). Events that LiteLLM reported as failed calls
// (status 'not_billable') are never usage. Column names win over parameter names inside a SQL function, hence
// the qualified parameters.
const usageFunction = (name: string, keyColumn: string, keyExpression: string, billableOnly = true): string => `
  CREATE OR REPLACE FUNCTION ${name}(customer_external_id text, "from" timestamptz, "to" timestamptz)
  RETURNS TABLE (
    ${keyColumn},
    total_requests bigint,
    total_input_tokens bigint,
    total_output_tokens bigint,
    total_tokens bigint,
    total_cost_usd numeric
  )
  LANGUAGE sql STABLE AS $$
    SELECT ${keyExpression},
           count(*)::bigint,
           coalesce(sum(e.tokens_input), 0)::bigint,
           coalesce(sum(e.tokens_output), 0)::bigint,
           coalesce(sum(e.total_tokens), 0)::bigint,
           coalesce(sum(e.cost_usd), 0)
      FROM litellm_usage_events e
     WHERE e.customer_external_id = ${name}.customer_external_id
       AND e.timestamp >= ${name}."from"
       AND e.timestamp < ${name}."to"
       ${billableOnly ? "AND e.status <> 'not_billable'" : ''}
     GROUP BY 1
     ORDER BY 1
  $$`

export async function up (db: Kysely<any>): Promise<void> {
  // Service API keys created with `npm run keys -- create <name>`: only the SHA-256 of a key is stored.
  await db.schema.createTable('api_keys')
    .addColumn('id', 'bigint', (c) => c.primaryKey().generatedAlwaysAsIdentity())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('key_prefix', 'text', (c) => c.notNull())
    .addColumn('key_hash', 'bytea', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .execute()
  // A name names one live key, so that revoking by name is unambiguous.
  await sql`CREATE UNIQUE INDEX api_keys_live_name_idx ON api_keys (name) WHERE revoked_at IS NULL`.execute(db)

  await sql.raw(usageFunction('aggregate_customer_usage', 'model text', 'e.model')).execute(db)
  await sql.raw(usageFunction('aggregate_customer_usage_by_provider', 'provider text', 'e.provider')).execute(db)
  await sql.raw(usageFunction('aggregate_customer_usage_by_day', 'day date', '(e.timestamp AT TIME ZONE \'UTC\')::date')).execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION aggregate_customer_usage_by_day(text, timestamptz, timestamptz)`.execute(db)
  await sql`DROP FUNCTION aggregate_customer_usage_by_provider(text, timestamptz, timestamptz)`.execute(db)
  // The previous definition, which counted every event.
  await sql.raw(usageFunction('aggregate_customer_usage', 'model text', 'e.model', false)).execute(db)
  await db.schema.dropTable('api_keys').execute()
}
