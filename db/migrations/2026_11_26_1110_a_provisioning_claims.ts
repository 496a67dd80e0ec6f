import { sql, type Kysely } from 'kysely'

// Frozen in time: Kysely<any>, no application imports.
export async function up (db: Kysely<any>): Promise<void> {
  // Who is creating a customer's Lago customer and subscription right now (a forwarder worker or an API
  // request, on any replica). A claim replaces the advisory lock that used to be held in a transaction across
  // the Lago calls: it is taken and released in short statements, and expires on its own if its holder dies.
  await sql`
    CREATE TABLE customer_provisioning_claims (
      customer_external_id text PRIMARY KEY,
      claim_id uuid NOT NULL,
      claimed_by text NOT NULL,
      claimed_until timestamptz NOT NULL
    )
  `.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`DROP TABLE customer_provisioning_claims`.execute(db)
}
