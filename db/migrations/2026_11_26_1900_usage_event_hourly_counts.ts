import { sql, type Kysely } from 'kysely'

// GET /webhooks/stats' "last 24 hours" counted the events received in the last 24 hours on every call: its cost grew
// with a day's traffic (3.2x an empty table's time on a year of 20M events). The same triggers that keep
// usage_event_counts now also keep usage_event_hourly_counts: per (organization, UTC hour of received_at, source,
// status), sharded the same way. A reader sums the whole hours inside the window and counts events only for the
// one partial hour at its start: exact, and an hour of events at most. Only the last 25 hours are counted (older
// rows change no window: the window's whole hours start less than 24 hours ago); retention deletes older hours.
// Frozen in time: Kysely<any>, no application imports.
const SHARDS = 16
const KEY = 'organization_id, source, status'
const HOURLY_KEY = 'organization_id, hour, source, status'
const HOUR = "date_trunc('hour', received_at, 'UTC')"
const RECENT = "received_at > now() - interval '25 hours'"

/**
 * One upsert into a counts table from the statement's transition rows: `rows(columns, filter)` yields the
 * FROM clause with each row's delta (as `d`).
 */
const upsert = (table: string, key: string, columns: string, filter: string, rows: (columns: string, filter: string) => string): string => `
        INSERT INTO ${table} (${key}, shard, events)
          SELECT ${key}, pg_backend_pid() % ${SHARDS}, sum(d) FROM ${rows(columns, filter)}
           GROUP BY ${key} HAVING sum(d) <> 0 ORDER BY ${key}
        ON CONFLICT (${key}, shard) DO UPDATE SET events = ${table}.events + excluded.events;`

/** The triggers' function: counts per organization (as migration 1700 left it), and with `hourly` the hourly counts. */
const applyFunction = (hourly: boolean): string => {
  const counts = (rows: (columns: string, filter: string) => string): string =>
    upsert('usage_event_counts', KEY, KEY, '', rows) +
    (hourly ? upsert('usage_event_hourly_counts', HOURLY_KEY, `organization_id, ${HOUR} AS hour, source, status`, `WHERE ${RECENT}`, rows) : '')
  return `
  CREATE OR REPLACE FUNCTION usage_event_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN${counts((columns, filter) => `(SELECT ${columns}, 1 AS d FROM new_rows ${filter}) AS added`)}
      ELSIF TG_OP = 'DELETE' THEN${counts((columns, filter) => `(SELECT ${columns}, -1 AS d FROM old_rows ${filter}) AS removed`)}
      ELSE${counts((columns, filter) => `(SELECT ${columns}, 1 AS d FROM new_rows ${filter}
                   UNION ALL
                   SELECT ${columns}, -1 FROM old_rows ${filter}) AS moved`)}
      END IF;
      RETURN NULL;
    END $$`
}

export async function up (db: Kysely<any>): Promise<void> {
  // Writers wait until the recent hours are counted (their triggers need the table); readers go on.
  await sql`LOCK TABLE litellm_usage_events IN SHARE ROW EXCLUSIVE MODE`.execute(db)
  await sql`CREATE TABLE usage_event_hourly_counts (
              organization_id text NOT NULL,
              hour timestamptz NOT NULL,
              source text NOT NULL,
              status text NOT NULL,
              shard smallint NOT NULL,
              events bigint NOT NULL,
              PRIMARY KEY (organization_id, hour, source, status, shard)
            )`.execute(db)
  await sql.raw(applyFunction(true)).execute(db)
  await sql.raw(`INSERT INTO usage_event_hourly_counts (${HOURLY_KEY}, shard, events)
                   SELECT organization_id, ${HOUR}, source, status, 0, count(*) FROM litellm_usage_events
                    WHERE ${RECENT} GROUP BY 1, 2, 3, 4`).execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  // Writers wait: one still running the old function must not find the table gone.
  await sql`LOCK TABLE litellm_usage_events IN SHARE ROW EXCLUSIVE MODE`.execute(db)
  await sql.raw(applyFunction(false)).execute(db)
  await sql`DROP TABLE usage_event_hourly_counts`.execute(db)
}
