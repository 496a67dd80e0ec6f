import { sql, type Kysely } from 'kysely'

// The operator's views (GET /webhooks/stats, /api/pipeline, /api/problems, /api/lago/status) answer per
// organization now. Frozen in time: Kysely<any>, no application imports.
//
// usage_event_counts (migration 1600) kept one total per (source, status) for the whole deployment; it now keeps
// one per (organization, source, status), so an organization's totals stay a read of a few counter rows however
// large the table grows. The triggers' function is replaced in place (same triggers, same shards, same order of
// upserts, so two writers still cannot deadlock); an UPDATE that moves an event to another organization (routing
// by LiteLLM identity) moves its count too, as a status change does. The table is recounted once, under a lock
// that keeps writers out (readers go on), so nothing is counted twice or missed.
const SHARDS = 16

const applyFunction = (perOrganization: boolean): string => {
  const key = perOrganization ? 'organization_id, source, status' : 'source, status'
  return `
  CREATE OR REPLACE FUNCTION usage_event_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        INSERT INTO usage_event_counts (${key}, shard, events)
          SELECT ${key}, pg_backend_pid() % ${SHARDS}, count(*) FROM new_rows
           GROUP BY ${key} ORDER BY ${key}
        ON CONFLICT (${key}, shard) DO UPDATE SET events = usage_event_counts.events + excluded.events;
      ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO usage_event_counts (${key}, shard, events)
          SELECT ${key}, pg_backend_pid() % ${SHARDS}, -count(*) FROM old_rows
           GROUP BY ${key} ORDER BY ${key}
        ON CONFLICT (${key}, shard) DO UPDATE SET events = usage_event_counts.events + excluded.events;
      ELSE
        INSERT INTO usage_event_counts (${key}, shard, events)
          SELECT ${key}, pg_backend_pid() % ${SHARDS}, sum(d) FROM (
                   SELECT ${key}, 1 AS d FROM new_rows
                   UNION ALL
                   SELECT ${key}, -1 FROM old_rows) AS moved
           GROUP BY ${key} HAVING sum(d) <> 0 ORDER BY ${key}
        ON CONFLICT (${key}, shard) DO UPDATE SET events = usage_event_counts.events + excluded.events;
      END IF;
      RETURN NULL;
    END $$`
}

async function recount (db: Kysely<any>, perOrganization: boolean): Promise<void> {
  // Writers wait (their triggers need the counts); readers of the events do not.
  await sql`LOCK TABLE litellm_usage_events IN SHARE ROW EXCLUSIVE MODE`.execute(db)
  await sql`DROP TABLE usage_event_counts`.execute(db)
  await sql`CREATE TABLE usage_event_counts (
              ${perOrganization ? sql`organization_id text NOT NULL,` : sql``}
              source text NOT NULL,
              status text NOT NULL,
              shard smallint NOT NULL,
              events bigint NOT NULL,
              PRIMARY KEY (${perOrganization ? sql`organization_id, ` : sql``}source, status, shard)
            )`.execute(db)
  await sql.raw(applyFunction(perOrganization)).execute(db)
  await sql.raw(`INSERT INTO usage_event_counts (${perOrganization ? 'organization_id, ' : ''}source, status, shard, events)
                   SELECT ${perOrganization ? 'organization_id, ' : ''}source, status, 0, count(*) FROM litellm_usage_events
                    GROUP BY ${perOrganization ? 'organization_id, ' : ''}source, status`).execute(db)
}

export async function up (db: Kysely<any>): Promise<void> {
  await recount(db, true)
  // An organization's problems (dead, failed, unmapped, lago_error) by status: GET /api/problems and the unmapped
  // reasons of GET /webhooks/stats read a range of this instead of every organization's problems.
  await sql`CREATE INDEX IF NOT EXISTS litellm_usage_events_organization_problems_idx ON litellm_usage_events (organization_id, status, id)
            WHERE status NOT IN ('pending', 'forwarded', 'not_billable')`.execute(db)
  // An organization's last delivery to its Lago (GET /api/lago/status): without it, an organization that never
  // sent anything would read every other organization's delivery log backwards. Created on every partition.
  await sql`CREATE INDEX IF NOT EXISTS webhook_delivery_logs_organization_created_at_idx ON webhook_delivery_logs (organization_id, created_at)`.execute(db)
  // An organization's Lago webhooks, newest first (GET /api/lago-webhooks).
  await sql`CREATE INDEX IF NOT EXISTS lago_webhooks_organization_idx ON lago_webhooks (organization_id, id)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX IF EXISTS lago_webhooks_organization_idx`.execute(db)
  await sql`DROP INDEX IF EXISTS webhook_delivery_logs_organization_created_at_idx`.execute(db)
  await sql`DROP INDEX IF EXISTS litellm_usage_events_organization_problems_idx`.execute(db)
  await recount(db, false)
}
