import { sql, type Kysely } from 'kysely'

// The forwarder's claims move out of the events into a table of their own. A claim used to be an UPDATE of the
// event (token, worker, lease, and the Lago body frozen for its first send): a second row version per forwarded
// event, with an entry in each of the event's indexes, before the UPDATE that marks it forwarded. Claiming 100
// events that way took 4.9 ms of PostgreSQL's time against 2.5 ms for the settle; a claim that locks the events and
// inserts into this table takes 2.1 ms (100,000 events claimed and settled by one session, both ways).
//
// A row lives from the claim to its settle, which deletes it and moves what it froze (subscription, body) into the
// event in the same UPDATE as the status. A claim whose holder died stays, with its frozen body, until the event
// is claimed again: the next claim takes its place (a new token) and keeps that body. Tokens come from a sequence,
// so that a claim taken again never gets a token an older holder still has.
//
// Events claimed when this migration runs are claimed no longer: their bodies, frozen in the event, stay; a
// replica still running the previous version fails its statements from here on, and its events go to the others.
// Frozen in time: Kysely<any>, no application imports.
export async function up (db: Kysely<any>): Promise<void> {
  await sql`CREATE SEQUENCE usage_event_claim_tokens`.execute(db)
  await sql`
    CREATE TABLE usage_event_claims (
      event_id bigint PRIMARY KEY,
      received_at timestamptz NOT NULL,
      organization_id text NOT NULL REFERENCES organizations (id),
      token bigint NOT NULL DEFAULT nextval('usage_event_claim_tokens'),
      worker text NOT NULL,
      lease_expires_at timestamptz NOT NULL,
      external_subscription_id text,
      lago_payload jsonb
    )`.execute(db)
  await sql`ALTER SEQUENCE usage_event_claim_tokens OWNED BY usage_event_claims.token`.execute(db)
  await sql`ALTER TABLE litellm_usage_events DROP COLUMN claim_token, DROP COLUMN claimed_by, DROP COLUMN lease_expires_at`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`
    ALTER TABLE litellm_usage_events
      ADD COLUMN claim_token bigint NOT NULL DEFAULT 0,
      ADD COLUMN claimed_by text,
      ADD COLUMN lease_expires_at timestamptz`.execute(db)
  // What claims froze goes back into the events, and they are claimed as before.
  await sql`
    UPDATE litellm_usage_events e
       SET claim_token = c.token, claimed_by = c.worker, lease_expires_at = c.lease_expires_at,
           external_subscription_id = coalesce(e.external_subscription_id, c.external_subscription_id),
           lago_payload = coalesce(e.lago_payload, c.lago_payload)
      FROM usage_event_claims c
     WHERE e.id = c.event_id AND e.received_at = c.received_at`.execute(db)
  await sql`DROP TABLE usage_event_claims`.execute(db)
}
