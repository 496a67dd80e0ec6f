import { sql, type Kysely } from 'kysely'

// The dashboard's aggregations (GET /api/pipeline, /api/problems, /api/usage) read ranges of these indexes, never
// the whole table. Frozen in time: Kysely<any>, no application imports.
export async function up (db: Kysely<any>): Promise<void> {
  // Events forwarded in the last minute (events/s forwarded): only rows Lago has carry processed_at.
  await sql`CREATE INDEX IF NOT EXISTS litellm_usage_events_processed_at_idx ON litellm_usage_events (processed_at)
            WHERE processed_at IS NOT NULL`.execute(db)
  // Problems: every status that is neither waiting normally, delivered, nor a failed call kept for the record.
  // Written as NOT IN so that a problem status added later (lago_error) is covered without a new index.
  await sql`CREATE INDEX IF NOT EXISTS litellm_usage_events_problems_idx ON litellm_usage_events (status, id)
            WHERE status NOT IN ('pending', 'forwarded', 'not_billable')`.execute(db)
  // Usage over a time range for every customer: a covering index, so day buckets are an index-only range scan.
  await sql`CREATE INDEX IF NOT EXISTS litellm_usage_events_timestamp_usage_idx ON litellm_usage_events ("timestamp")
            INCLUDE (customer_external_id, model, status, tokens_input, tokens_output, total_tokens, cost_usd)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX IF EXISTS litellm_usage_events_timestamp_usage_idx`.execute(db)
  await sql`DROP INDEX IF EXISTS litellm_usage_events_problems_idx`.execute(db)
  await sql`DROP INDEX IF EXISTS litellm_usage_events_processed_at_idx`.execute(db)
}
