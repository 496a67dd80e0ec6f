import { sql, type Kysely } from 'kysely'

// An event's organization_id no longer references organizations row by row. The key's check ran once per inserted
// event (a query and a row lock on the organization for each row: 6-8 ms of the 42-50 ms that inserting 500 events
// takes on an idle PostgreSQL; batches of 500 ingested 10 % faster without it, in alternating runs). The insert
// guards what the key did, once per write: it locks the write's organizations (FOR KEY SHARE, as the key's check
// did) and stores only the events of those it found. A purge locks its organization FOR UPDATE first, so a write
// either holds the organization until it commits (the purge then waits and deletes its events too) or waits for the
// purge and finds the organization gone (its events refused, nothing stored). The other writers of an event's
// organization_id lock it likewise: a route's move of unrouted events, and retention putting a month's events back.
// The dedupe keys never had the key.
// Frozen in time: Kysely<any>, no application imports.
const CONSTRAINT = 'litellm_usage_events_organization_id_fkey'

export async function up (db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE litellm_usage_events DROP CONSTRAINT ${sql.id(CONSTRAINT)}`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE litellm_usage_events
              ADD CONSTRAINT ${sql.id(CONSTRAINT)} FOREIGN KEY (organization_id) REFERENCES organizations (id)`.execute(db)
}
