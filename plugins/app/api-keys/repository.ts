import { randomBytes } from 'node:crypto'
import { sql, type Kysely } from 'kysely'
import { DEFAULT_ORGANIZATION_ID, type Database } from '../../../db/database.js'
import { sha256 } from '../webhook-auth.js'

/** Keys start with this, so that a leaked one is recognisable (secret scanners, logs). */
const API_KEY_PREFIX = 'lai_'
const SHOWN_PREFIX_LENGTH = API_KEY_PREFIX.length + 6

export interface ApiKeyInfo {
  id: number
  name: string
  /** The first characters of the key, enough to tell keys apart. */
  prefix: string
  created_at: Date
  revoked_at: Date | null
}

/** A new key: 32 random bytes, base64url, behind a recognisable prefix. */
function generateApiKey (): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url')
}

/** Stores a new key under `name` (unique among live keys) and returns it: the only time it is ever shown. */
export async function createApiKey (db: Kysely<Database>, name: string, organizationId = DEFAULT_ORGANIZATION_ID): Promise<{ key: string, info: ApiKeyInfo }> {
  const key = generateApiKey()
  const row = await db.insertInto('api_keys')
    .values({ organization_id: organizationId, name, key_prefix: key.slice(0, SHOWN_PREFIX_LENGTH), key_hash: sha256(key) })
    .returning(['id', 'name', 'key_prefix', 'created_at', 'revoked_at'])
    .executeTakeFirstOrThrow()
  return { key, info: toInfo(row) }
}

/** One organization's stored keys, live and revoked, by id: never the keys themselves. */
export async function listApiKeys (db: Kysely<Database>, organizationId: string): Promise<ApiKeyInfo[]> {
  const rows = await db.selectFrom('api_keys').select(['id', 'name', 'key_prefix', 'created_at', 'revoked_at'])
    .where('organization_id', '=', organizationId).orderBy('id').execute()
  return rows.map(toInfo)
}

/**
 * Revokes one of the organization's keys by id (a revoked one keeps its first revocation time); undefined when the
 * organization has no such key. Keys are looked up in the table on every request: it is refused from the next one.
 */
export async function revokeOrganizationApiKey (db: Kysely<Database>, organizationId: string, id: number): Promise<ApiKeyInfo | undefined> {
  const row = await db.updateTable('api_keys')
    .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` as unknown as Date })
    .where('organization_id', '=', organizationId).where('id', '=', id)
    .returning(['id', 'name', 'key_prefix', 'created_at', 'revoked_at'])
    .executeTakeFirst()
  return row !== undefined ? toInfo(row) : undefined
}

/**
 * Revokes one organization's live key with this id (digits) or name (names are unique per organization); null when
 * it has none.
 */
export async function revokeApiKey (db: Kysely<Database>, organizationId: string, idOrName: string): Promise<ApiKeyInfo | null> {
  const row = await db.updateTable('api_keys')
    .set({ revoked_at: new Date() })
    .where('organization_id', '=', organizationId)
    .where('revoked_at', 'is', null)
    .where((eb) => /^\d+$/.test(idOrName) ? eb('id', '=', Number(idOrName)) : eb('name', '=', idOrName))
    .returning(['id', 'name', 'key_prefix', 'created_at', 'revoked_at'])
    .executeTakeFirst()
  return row !== undefined ? toInfo(row) : null
}

/** The live key whose SHA-256 this is. A lookup by digest reveals nothing about the key through its timing. */
export async function findLiveApiKey (db: Kysely<Database>, digest: Buffer): Promise<{ id: number, name: string, organizationId: string } | null> {
  const row = await db.selectFrom('api_keys').select(['id', 'name', 'organization_id as organizationId'])
    .where('key_hash', '=', digest).where('revoked_at', 'is', null).executeTakeFirst()
  return row ?? null
}

function toInfo (row: { id: number, name: string, key_prefix: string, created_at: Date, revoked_at: Date | null }): ApiKeyInfo {
  return { id: row.id, name: row.name, prefix: row.key_prefix, created_at: row.created_at, revoked_at: row.revoked_at }
}
