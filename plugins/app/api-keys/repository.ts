import { randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Database } from '../../../db/database.js'
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
export async function createApiKey (db: Kysely<Database>, name: string): Promise<{ key: string, info: ApiKeyInfo }> {
  const key = generateApiKey()
  const row = await db.insertInto('api_keys')
    .values({ name, key_prefix: key.slice(0, SHOWN_PREFIX_LENGTH), key_hash: sha256(key) })
    .returning(['id', 'name', 'key_prefix', 'created_at', 'revoked_at'])
    .executeTakeFirstOrThrow()
  return { key, info: toInfo(row) }
}

export async function listApiKeys (db: Kysely<Database>): Promise<ApiKeyInfo[]> {
  const rows = await db.selectFrom('api_keys').select(['id', 'name', 'key_prefix', 'created_at', 'revoked_at']).orderBy('id').execute()
  return rows.map(toInfo)
}

/** Revokes the live key with this id (digits) or name; null when there is none. */
export async function revokeApiKey (db: Kysely<Database>, idOrName: string): Promise<ApiKeyInfo | null> {
  const row = await db.updateTable('api_keys')
    .set({ revoked_at: new Date() })
    .where('revoked_at', 'is', null)
    .where((eb) => /^\d+$/.test(idOrName) ? eb('id', '=', Number(idOrName)) : eb('name', '=', idOrName))
    .returning(['id', 'name', 'key_prefix', 'created_at', 'revoked_at'])
    .executeTakeFirst()
  return row !== undefined ? toInfo(row) : null
}

/** The live key whose SHA-256 this is. A lookup by digest reveals nothing about the key through its timing. */
export async function findLiveApiKey (db: Kysely<Database>, digest: Buffer): Promise<{ id: number, name: string } | null> {
  const row = await db.selectFrom('api_keys').select(['id', 'name'])
    .where('key_hash', '=', digest).where('revoked_at', 'is', null).executeTakeFirst()
  return row ?? null
}

function toInfo (row: { id: number, name: string, key_prefix: string, created_at: Date, revoked_at: Date | null }): ApiKeyInfo {
  return { id: row.id, name: row.name, prefix: row.key_prefix, created_at: row.created_at, revoked_at: row.revoked_at }
}
