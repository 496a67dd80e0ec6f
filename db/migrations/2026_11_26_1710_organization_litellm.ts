import { sql, type Kysely } from 'kysely'

// Frozen in time: Kysely<any>, no application imports.

// An organization's own LiteLLM, whose spend logs are reconciled into it (its cursor: litellm_reconciliation's
// (organization_id, 'spend_logs') row). Null: none (default's is LITELLM_URL / LITELLM_MASTER_KEY). The master key is
// an AES-256-GCM ciphertext like the organization's other secrets.
export async function up (db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE organizations ADD COLUMN litellm_url text, ADD COLUMN litellm_master_key_encrypted text`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE organizations DROP COLUMN litellm_url, DROP COLUMN litellm_master_key_encrypted`.execute(db)
}
