import fp from 'fastify-plugin'
import { createApiKey, findLiveApiKey, listApiKeys, revokeApiKey } from './repository.js'

export type ApiKeys = ReturnType<typeof createApiKeysRepository>

declare module 'fastify' {
  interface FastifyInstance {
    /** Service API keys stored hashed in PostgreSQL (`npm run keys` manages them). */
    apiKeys: ApiKeys
  }
}

function createApiKeysRepository (db: Parameters<typeof findLiveApiKey>[0]) {
  return {
    findLive: async (digest: Buffer) => await findLiveApiKey(db, digest),
    create: async (name: string) => await createApiKey(db, name),
    list: async () => await listApiKeys(db),
    revoke: async (idOrName: string) => await revokeApiKey(db, idOrName)
  }
}

export default fp(async function apiKeys (fastify) {
  fastify.decorate('apiKeys', createApiKeysRepository(fastify.db))
}, { name: 'api-keys', dependencies: ['db'] })
