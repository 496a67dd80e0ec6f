import { sql, type Kysely } from 'kysely'

// A claim's organization_id no longer references organizations. With the key, a purge racing a claim deadlocked:
// the claim's key check waited for the organization row the purge had locked, the purge for the events the claim
// had locked, and PostgreSQL aborted the purge. The claim guards what the key did: it inserts claims only for events
// it has just locked, of an organization its own statement found active, and each event's organization_id keeps
// its foreign key; a purge waits on those event locks before it deletes the organization's claims, so it sees them.
// (The key's row-by-row check was also 1.3-2.9 ms of the 7.6-8.6 ms that inserting a claim of 400 events takes on an
// idle PostgreSQL, but drains measured no faster without it once the order of the runs was balanced.)
// Frozen in time: Kysely<any>, no application imports.
const CONSTRAINT = 'usage_event_claims_organization_id_fkey'

export async function up (db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE usage_event_claims DROP CONSTRAINT ${sql.id(CONSTRAINT)}`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE usage_event_claims
              ADD CONSTRAINT ${sql.id(CONSTRAINT)} FOREIGN KEY (organization_id) REFERENCES organizations (id)`.execute(db)
}
