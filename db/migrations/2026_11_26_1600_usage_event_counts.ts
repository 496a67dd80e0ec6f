import { sql, type Kysely } from 'kysely'

// GET /webhooks/stats counted the whole events table on every call: its cost grew with a year of events. The
// totals per (source, status) are kept instead in usage_event_counts, by statement-level triggers that see each
// statement's rows at once (one upsert per statement and group, not per row). A count is split over shards
// picked by the writing backend, so concurrent group commits do not queue on one counter row; the rows of one
// statement are upserted in (source, status) order, so two writers sharing a shard cannot deadlock. Readers sum
// the shards. This is bookkeeping (a materialised count), not a business rule: what a status means stays in
// TypeScript.
const SHARDS = 16

export async function up (db: Kysely<any>): Promise<void> {
  await sql`CREATE TABLE usage_event_counts (
              source text NOT NULL,
              status text NOT NULL,
              shard smallint NOT NULL,
              events bigint NOT NULL,
              PRIMARY KEY (source, status, shard)
            )`.execute(db)
  await sql`CREATE FUNCTION usage_event_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        INSERT INTO usage_event_counts (source, status, shard, events)
          SELECT source, status, pg_backend_pid() % ${sql.lit(SHARDS)}, count(*) FROM new_rows
           GROUP BY source, status ORDER BY source, status
        ON CONFLICT (source, status, shard) DO UPDATE SET events = usage_event_counts.events + excluded.events;
      ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO usage_event_counts (source, status, shard, events)
          SELECT source, status, pg_backend_pid() % ${sql.lit(SHARDS)}, -count(*) FROM old_rows
           GROUP BY source, status ORDER BY source, status
        ON CONFLICT (source, status, shard) DO UPDATE SET events = usage_event_counts.events + excluded.events;
      ELSE
        INSERT INTO usage_event_counts (source, status, shard, events)
          SELECT source, status, pg_backend_pid() % ${sql.lit(SHARDS)}, sum(d) FROM (
                   SELECT source, status, 1 AS d FROM new_rows
                   UNION ALL
                   SELECT source, status, -1 FROM old_rows) AS moved
           GROUP BY source, status HAVING sum(d) <> 0 ORDER BY source, status
        ON CONFLICT (source, status, shard) DO UPDATE SET events = usage_event_counts.events + excluded.events;
      END IF;
      RETURN NULL;
    END $$`.execute(db)
  await sql`CREATE TRIGGER usage_event_counts_insert AFTER INSERT ON litellm_usage_events
              REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_event_counts_apply()`.execute(db)
  await sql`CREATE TRIGGER usage_event_counts_update AFTER UPDATE ON litellm_usage_events
              REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_event_counts_apply()`.execute(db)
  await sql`CREATE TRIGGER usage_event_counts_delete AFTER DELETE ON litellm_usage_events
              REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_event_counts_apply()`.execute(db)
  // The triggers' lock (taken above, held to this migration's commit) keeps writers out until the existing rows
  // are counted: nothing is counted twice or missed.
  await sql`INSERT INTO usage_event_counts (source, status, shard, events)
              SELECT source, status, 0, count(*) FROM litellm_usage_events GROUP BY source, status`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`DROP TRIGGER usage_event_counts_delete ON litellm_usage_events`.execute(db)
  await sql`DROP TRIGGER usage_event_counts_update ON litellm_usage_events`.execute(db)
  await sql`DROP TRIGGER usage_event_counts_insert ON litellm_usage_events`.execute(db)
  await sql`DROP FUNCTION usage_event_counts_apply()`.execute(db)
  await sql`DROP TABLE usage_event_counts`.execute(db)
}
