import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import type { Database } from '../../../db/database.js'
import { createApiKey, findLiveApiKey, type ApiKeyInfo } from './repository.js'

/** What the service itself does with stored keys; `npm run keys` lists and revokes them through the repository. */
export interface ApiKeys {
  /** The live key with this SHA-256 digest, or null. */
  findLive: (digest: Buffer) => Promise<{ id: number, name: string, organizationId: string } | null>
  /** Stores a new key under `name`; the key is returned this once. */
  create: (name: string) => Promise<{ key: string, info: ApiKeyInfo }>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Service API keys stored hashed in PostgreSQL (`npm run keys` manages them). */
    apiKeys: ApiKeys
  }
}

function createApiKeysRepository (db: Kysely<Database>): ApiKeys {
  return {
    findLive: async (digest) => await findLiveApiKey(db, digest),
    create: async (name) => await createApiKey(db, name)
  }
}

export default fp(async function apiKeys (fastify) {
  fastify.decorate('apiKeys', createApiKeysRepository(fastify.db))
}, { name: 'api-keys', dependencies: ['db'] })
