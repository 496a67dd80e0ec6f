import { sql, type Kysely } from 'kysely'

// Frozen in time: Kysely<any>, no application imports.
export async function up (db: Kysely<any>): Promise<void> {
  // The Lago event is now built in TypeScript (plugins/app/forwarder/lago-event.ts) and frozen into
  // lago_payload at first send. Rows frozen before keep their body: a resend must stay byte-identical.
  await sql`DROP FUNCTION lago_event_body(litellm_usage_events, text, text)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  // As the forwarding migration created it, so that its own down still finds it.
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
}
