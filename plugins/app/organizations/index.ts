import { EventEmitter } from 'node:events'
import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import type { Kysely } from 'kysely'
import { DEFAULT_ORGANIZATION_ID, type Database, type IdentityKind, type OrganizationStatus, type RouteIdentityKind } from '../../../db/database.js'
import type { Config } from '../../../schemas/config.js'
import {
  IngestionTokenNotFoundError, OrganizationActiveError, OrganizationApiKeyNotFoundError, OrganizationExistsError,
  OrganizationNotFoundError, OrganizationProtectedError, OrganizationSecretsNotConfiguredError, OrganizationSecretUnreadableError
} from '../../../schemas/errors.js'
import { createApiKey, listApiKeys, revokeOrganizationApiKey, type ApiKeyInfo } from '../api-keys/repository.js'
import { sha256 } from '../webhook-auth.js'
import { createIngestionToken, deleteRoute, ensureUnroutedOrganization, loadRoutes, putRoute, UNROUTED_ORGANIZATION_ID, type OrganizationRouteRow, findOrganization, insertOrganization, purgeOrganization, listIngestionTokens, loadIngestionTokens, loadOrganizations, revokeIngestionToken, type IngestionTokenInfo, organizationsVersion, updateOrganization, type OrganizationPatch, type OrganizationRow } from './repository.js'
import { decryptSecret, encryptSecret, parseSecretsKey, SecretDecryptionError, secretContext, type SecretKind } from './secrets.js'
import { databaseUnavailable } from '../../../db/errors.js'

/** An organization as the service sees it: never its secrets, only whether they are set. */
export interface Organization {
  id: string
  name: string
  status: OrganizationStatus
  /** Its own Lago API URL; null: the service's LAGO_API_URL. */
  lagoApiUrl: string | null
  /** Lago's id of the organization (routes Lago's webhooks); null until known. */
  lagoOrganizationId: string | null
  hasLagoApiKey: boolean
  hasLagoWebhookHmacKey: boolean
  hasWebhookSecret: boolean
  /** Its defaults; null: the service's own (LAGO_METRIC_CODE, LAGO_PLAN_CODE, AUTO_PROVISION_CUSTOMERS, LITELLM_CUSTOMER_FIELDS). */
  metricCode: string | null
  planCode: string | null
  autoProvisionCustomers: boolean | null
  customerFields: IdentityKind[] | null
  /** Its own LiteLLM, reconciled into it (null: none; default's is LITELLM_URL). */
  litellmUrl: string | null
  hasLitellmMasterKey: boolean
  createdAt: Date
  updatedAt: Date
}

/** Where an organization's LiteLLM spend logs are read (reconciliation). */
export interface LiteLLMCredentials { url: string, masterKey: string }

/** An organization's settings with the service's defaults filled in: what forwarding and provisioning use. */
export interface OrganizationSettings {
  lagoApiUrl: string
  metricCode: string
  planCode: string
  autoProvisionCustomers: boolean
  customerFields: IdentityKind[]
}

export interface LagoCredentials {
  apiUrl: string
  /** Undefined when the organization has no key (default without LAGO_API_KEY): Lago calls then fail as not configured. */
  apiKey: string | undefined
}

export interface NewOrganization {
  id: string
  name: string
  lagoApiUrl?: string | null
  lagoApiKey?: string | null
  lagoOrganizationId?: string | null
  lagoWebhookHmacKey?: string | null
  webhookSecret?: string | null
  metricCode?: string | null
  planCode?: string | null
  autoProvisionCustomers?: boolean | null
  customerFields?: IdentityKind[] | null
  litellmUrl?: string | null
  litellmMasterKey?: string | null
}

/** What an update may change; undefined leaves a field as it is, null returns it to the service default. */
export type OrganizationUpdate = Partial<Omit<NewOrganization, 'id' | 'lagoApiKey'>> & { status?: OrganizationStatus }

/** The organizations this service bills into (plugins/app/organizations): its public face. */
export interface Organizations {
  get: (id: string) => Promise<Organization | null>
  /** Every organization, by id. */
  list: () => Promise<Organization[]>
  /** Its Lago URL and decrypted API key; default's come from LAGO_API_URL and LAGO_API_KEY. Throws OrganizationNotFoundError. */
  lagoCredentials: (id: string) => Promise<LagoCredentials>
  /** Its Lago webhook HMAC key (decrypted); default's is LAGO_WEBHOOK_HMAC_KEY. */
  lagoWebhookHmacKey: (id: string) => Promise<string | undefined>
  /** Its Standard Webhooks secret for ingestion (decrypted); default's is WEBHOOK_SECRET. */
  webhookSecret: (id: string) => Promise<string | undefined>
  /**
   * Its LiteLLM's URL and master key (decrypted), for reconciliation; null when it has none (both are needed).
   * default's are LITELLM_URL and LITELLM_MASTER_KEY unless stored.
   */
  litellmCredentials: (id: string) => Promise<LiteLLMCredentials | null>
  /** The organization whose Lago organization id this is (Lago's webhooks name it). */
  byLagoOrganizationId: (lagoOrganizationId: string) => Promise<Organization | null>
  /** Its settings with the service's defaults filled in. Throws OrganizationNotFoundError. */
  settings: (id: string) => Promise<OrganizationSettings>
  create: (input: NewOrganization) => Promise<Organization>
  update: (id: string, patch: OrganizationUpdate) => Promise<Organization>
  /** Replaces its Lago API key (stored encrypted). */
  rotateLagoKey: (id: string, apiKey: string) => Promise<Organization>
  /**
   * Deletes a disabled organization with every row it owns (events, customers, mappings, ledger, delivery logs,
   * cursors, Lago webhooks and invoices, API keys, ingestion tokens, routes), all or nothing; rows deleted per table.
   * Its Lago is not touched. Throws OrganizationNotFoundError, OrganizationActiveError, OrganizationProtectedError
   * (default, unrouted).
   */
  delete: (id: string) => Promise<Record<string, number>>
  /**
   * The organization whose ingestion token this is (whether it is active, whether the token was revoked), or null.
   * From memory (no query: it runs before the body is read, on every ingestion request).
   */
  ingestionTokenOrganization: (token: string) => { id: string, active: boolean, revoked: boolean } | null
  /** A new ingestion token of the organization, shown this once (only its SHA-256 is stored). */
  issueIngestionToken: (id: string) => Promise<{ token: string, tokenId: number, prefix: string, createdAt: Date }>
  /** The organization's ingestion tokens, live and revoked, without the tokens (their prefix only). */
  ingestionTokens: (id: string) => Promise<IngestionTokenInfo[]>
  /**
   * Revokes one of its ingestion tokens: refused (401) from now on by this replica, by the others within the refresh
   * interval. Throws OrganizationNotFoundError, IngestionTokenNotFoundError.
   */
  revokeIngestionToken: (id: string, tokenId: number) => Promise<IngestionTokenInfo>
  /** A new service API key of the organization (it sees only this organization), shown this once. */
  issueApiKey: (id: string, name?: string) => Promise<{ key: string, keyId: number, name: string, prefix: string, createdAt: Date }>
  /** The organization's stored API keys, live and revoked, without the keys (their prefix only). */
  apiKeys: (id: string) => Promise<ApiKeyInfo[]>
  /** Revokes one of its API keys: refused (401) from the next request on, on every replica (keys are not cached). */
  revokeApiKey: (id: string, keyId: number) => Promise<ApiKeyInfo>
  /**
   * Routing of a shared credential (default's) by LiteLLM identity. null when no route is configured (everything
   * stays in default, the single-organization setup); else the organization of the call's LiteLLM org (first) or
   * team, or `{ unrouted: reason }`.
   */
  route: (identities: { org?: string, team?: string }) => { organizationId: string } | { unrouted: string } | null
  /** The disabled organization where calls no route claims wait as unmapped, with the reason (created on first use). */
  unroutedOrganization: () => Promise<string>
  routes: {
    list: () => Promise<OrganizationRouteRow[]>
    /** Creates or replaces a route; waiting unrouted events it claims move to the organization (`moved`). */
    put: (identity: RouteIdentityKind, value: string, organizationId: string) => Promise<{ row: OrganizationRouteRow, created: boolean, moved: number }>
    remove: (identity: RouteIdentityKind, value: string) => Promise<boolean>
  }
  /** Reads the table again now (changes made on other replicas otherwise show within the refresh interval). */
  refresh: () => Promise<void>
  /**
   * `changed` fires with the organization's id after it was created, updated, its key rotated or it was disabled,
   * on this replica at once and on the others within the refresh interval. Listeners must not throw.
   */
  on: (event: 'changed', listener: (id: string) => void) => void
  off: (event: 'changed', listener: (id: string) => void) => void
}

declare module 'fastify' {
  interface FastifyInstance {
    organizations: Organizations
  }
}

function toOrganization (row: OrganizationRow): Organization {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    lagoApiUrl: row.lago_api_url,
    lagoOrganizationId: row.lago_organization_id,
    hasLagoApiKey: row.lago_api_key_encrypted !== null,
    hasLagoWebhookHmacKey: row.lago_webhook_hmac_key_encrypted !== null,
    hasWebhookSecret: row.webhook_secret_encrypted !== null,
    metricCode: row.metric_code,
    planCode: row.plan_code,
    autoProvisionCustomers: row.auto_provision_customers,
    customerFields: row.customer_fields,
    litellmUrl: row.litellm_url,
    hasLitellmMasterKey: row.litellm_master_key_encrypted !== null,
    createdAt: row.created_at,
    updatedAt: row.updated_at
  }
}

export interface OrganizationDirectoryOptions {
  db: Kysely<Database>
  config: Config
  log: FastifyBaseLogger
  /** How often the table is checked for changes made by other replicas. */
  refreshMs?: number
}

/** The organizations table, cached in memory (it is small and read on hot paths), refreshed on change. */
export class OrganizationDirectory implements Organizations {
  readonly #o: OrganizationDirectoryOptions
  readonly #events = new EventEmitter()
  readonly #secretsKey: Buffer | undefined
  #rows = new Map<string, OrganizationRow>()
  /** `${identity}:${value}` → organization. */
  #routes = new Map<string, string>()
  /** hex SHA-256 of each ingestion token → its organization, and whether it was revoked. */
  #tokens = new Map<string, { organizationId: string, revoked: boolean }>()
  #version = ''
  #timer: NodeJS.Timeout | undefined

  constructor (o: OrganizationDirectoryOptions) {
    this.#o = o
    this.#secretsKey = o.config.ORGANIZATION_SECRETS_KEY !== undefined ? parseSecretsKey(o.config.ORGANIZATION_SECRETS_KEY) : undefined
  }

  async start (): Promise<void> {
    await this.refresh()
    const locked = [...this.#rows.values()].filter((r) => r.lago_api_key_encrypted !== null || r.lago_webhook_hmac_key_encrypted !== null || r.webhook_secret_encrypted !== null || r.litellm_master_key_encrypted !== null)
    if (locked.length > 0 && this.#secretsKey === undefined) {
      this.#o.log.error({ organizations: locked.map((r) => r.id) },
        'ORGANIZATION_SECRETS_KEY is not set: these organizations\' stored Lago keys cannot be read, nothing can be sent to their Lago')
    }
    // A database outage is reported once by the database plugin.
    this.#timer = setInterval(() => { this.#poll().catch((err: unknown) => { if (!databaseUnavailable(err)) this.#o.log.warn({ err }, 'organizations: refresh failed') }) }, this.#o.refreshMs ?? 5000)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#events.removeAllListeners()
  }

  on (event: 'changed', listener: (id: string) => void): void { this.#events.on(event, listener) }
  off (event: 'changed', listener: (id: string) => void): void { this.#events.off(event, listener) }

  async refresh (): Promise<void> {
    const [version, rows, tokens, routes] = await Promise.all([organizationsVersion(this.#o.db), loadOrganizations(this.#o.db), loadIngestionTokens(this.#o.db), loadRoutes(this.#o.db)])
    this.#routes = new Map(routes.map((r) => [`${r.identity}:${r.value}`, r.organization_id]))
    const before = this.#rows
    this.#rows = new Map(rows.map((r) => [r.id, r]))
    this.#tokens = new Map(tokens.map((t) => [t.token_hash.toString('hex'), { organizationId: t.organization_id, revoked: t.revoked }]))
    this.#version = version
    for (const row of rows) {
      const old = before.get(row.id)
      if (old !== undefined && old.updated_at.getTime() !== row.updated_at.getTime()) this.#changed(row.id)
      else if (old === undefined && before.size > 0) this.#changed(row.id)
    }
    // Deleted on another replica: its caches go too.
    for (const id of before.keys()) if (!this.#rows.has(id)) this.#changed(id)
  }

  async #poll (): Promise<void> {
    if (await organizationsVersion(this.#o.db) !== this.#version) await this.refresh()
  }

  #changed (id: string): void {
    try {
      this.#events.emit('changed', id)
    } catch (err) {
      this.#o.log.error({ err, organization: id }, 'organizations: a change listener failed')
    }
  }

  /** The row, from the cache, else from the table (created on another replica a moment ago). */
  async #row (id: string): Promise<OrganizationRow | undefined> {
    const cached = this.#rows.get(id)
    if (cached !== undefined) return cached
    const row = await findOrganization(this.#o.db, id)
    if (row !== undefined) this.#rows.set(id, row)
    return row
  }

  async #existing (id: string): Promise<OrganizationRow> {
    const row = await this.#row(id)
    if (row === undefined) throw new OrganizationNotFoundError(id)
    return row
  }

  /** The organization an ingestion token names, active or not, revoked or not (the caller refuses both), or null. */
  ingestionTokenOrganization (token: string): { id: string, active: boolean, revoked: boolean } | null {
    const found = this.#tokens.get(sha256(token).toString('hex'))
    if (found === undefined) return null
    return { id: found.organizationId, active: this.#rows.get(found.organizationId)?.status === 'active', revoked: found.revoked }
  }

  async issueIngestionToken (id: string): Promise<{ token: string, tokenId: number, prefix: string, createdAt: Date }> {
    await this.#existing(id)
    const created = await createIngestionToken(this.#o.db, id)
    this.#tokens.set(sha256(created.token).toString('hex'), { organizationId: id, revoked: false })
    return { token: created.token, tokenId: created.id, prefix: created.prefix, createdAt: created.created_at }
  }

  async ingestionTokens (id: string): Promise<IngestionTokenInfo[]> {
    await this.#existing(id)
    return await listIngestionTokens(this.#o.db, id)
  }

  async revokeIngestionToken (id: string, tokenId: number): Promise<IngestionTokenInfo> {
    await this.#existing(id)
    const revoked = await revokeIngestionToken(this.#o.db, id, tokenId)
    if (revoked === undefined) throw new IngestionTokenNotFoundError(id, String(tokenId))
    // At once here; other replicas see it in the table's version within the refresh interval.
    this.#tokens.set(revoked.tokenHash.toString('hex'), { organizationId: id, revoked: true })
    return revoked.info
  }

  async issueApiKey (id: string, name?: string): Promise<{ key: string, keyId: number, name: string, prefix: string, createdAt: Date }> {
    await this.#existing(id)
    const { key, info } = await createApiKey(this.#o.db, name ?? `${id}-${new Date().toISOString()}`, id)
    return { key, keyId: info.id, name: info.name, prefix: info.prefix, createdAt: info.created_at }
  }

  async apiKeys (id: string): Promise<ApiKeyInfo[]> {
    await this.#existing(id)
    return await listApiKeys(this.#o.db, id)
  }

  async revokeApiKey (id: string, keyId: number): Promise<ApiKeyInfo> {
    await this.#existing(id)
    const revoked = await revokeOrganizationApiKey(this.#o.db, id, keyId)
    if (revoked === undefined) throw new OrganizationApiKeyNotFoundError(id, String(keyId))
    return revoked
  }

  route (identities: { org?: string, team?: string }): { organizationId: string } | { unrouted: string } | null {
    if (this.#routes.size === 0) return null
    for (const kind of ['org', 'team'] as const) {
      const value = identities[kind]
      const id = value !== undefined ? this.#routes.get(`${kind}:${value}`) : undefined
      if (id !== undefined) return { organizationId: id }
    }
    const named = [identities.org !== undefined ? `org "${identities.org}"` : null, identities.team !== undefined ? `team "${identities.team}"` : null].filter(Boolean)
    return { unrouted: named.length > 0 ? `no organization route for LiteLLM ${named.join(' or ')}` : 'the call names no LiteLLM org or team to route by' }
  }

  readonly routes = {
    list: async () => await loadRoutes(this.#o.db),
    put: async (identity: RouteIdentityKind, value: string, organizationId: string) => {
      await this.#existing(organizationId)
      const saved = await putRoute(this.#o.db, identity, value, organizationId)
      if (saved === 'not_found') throw new OrganizationNotFoundError(organizationId)
      this.#routes.set(`${identity}:${value}`, organizationId)
      return saved
    },
    remove: async (identity: RouteIdentityKind, value: string) => {
      const removed = await deleteRoute(this.#o.db, identity, value)
      this.#routes.delete(`${identity}:${value}`)
      return removed
    }
  }

  /** The organization where calls that no route claims wait (created on first use). */
  async unroutedOrganization (): Promise<string> {
    if (!this.#rows.has(UNROUTED_ORGANIZATION_ID)) {
      await ensureUnroutedOrganization(this.#o.db)
      const row = await findOrganization(this.#o.db, UNROUTED_ORGANIZATION_ID)
      if (row !== undefined) this.#rows.set(row.id, row)
    }
    return UNROUTED_ORGANIZATION_ID
  }

  async get (id: string): Promise<Organization | null> {
    const row = await this.#row(id)
    return row !== undefined ? toOrganization(row) : null
  }

  async list (): Promise<Organization[]> {
    return [...this.#rows.values()].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0).map(toOrganization)
  }

  async byLagoOrganizationId (lagoOrganizationId: string): Promise<Organization | null> {
    for (const row of this.#rows.values()) if (row.lago_organization_id === lagoOrganizationId) return toOrganization(row)
    return null
  }

  async settings (id: string): Promise<OrganizationSettings> {
    const row = await this.#existing(id)
    const { config } = this.#o
    return {
      lagoApiUrl: row.lago_api_url ?? config.LAGO_API_URL,
      metricCode: row.metric_code ?? config.LAGO_METRIC_CODE,
      planCode: row.plan_code ?? config.LAGO_PLAN_CODE,
      autoProvisionCustomers: row.auto_provision_customers ?? config.AUTO_PROVISION_CUSTOMERS,
      customerFields: row.customer_fields ?? config.LITELLM_CUSTOMER_FIELDS
    }
  }

  #decrypt (row: OrganizationRow, kind: SecretKind, stored: string | null): string | undefined {
    if (stored === null) return undefined
    if (this.#secretsKey === undefined) throw new OrganizationSecretsNotConfiguredError()
    try {
      return decryptSecret(this.#secretsKey, stored, secretContext(row.id, kind))
    } catch (err) {
      if (err instanceof SecretDecryptionError) throw new OrganizationSecretUnreadableError(row.id)
      throw err
    }
  }

  #encrypt (id: string, kind: SecretKind, plaintext: string | null | undefined): string | null | undefined {
    if (plaintext === undefined || plaintext === null) return plaintext
    if (this.#secretsKey === undefined) throw new OrganizationSecretsNotConfiguredError()
    return encryptSecret(this.#secretsKey, plaintext, secretContext(id, kind))
  }

  async lagoCredentials (id: string): Promise<LagoCredentials> {
    const row = await this.#existing(id)
    const apiUrl = row.lago_api_url ?? this.#o.config.LAGO_API_URL
    // default keeps LAGO_API_KEY unless a key was stored for it (rotated through the admin API).
    const stored = this.#decrypt(row, 'lago_api_key', row.lago_api_key_encrypted)
    return { apiUrl, apiKey: stored ?? (id === DEFAULT_ORGANIZATION_ID ? this.#o.config.LAGO_API_KEY : undefined) }
  }

  async lagoWebhookHmacKey (id: string): Promise<string | undefined> {
    const row = await this.#existing(id)
    const stored = this.#decrypt(row, 'lago_webhook_hmac_key', row.lago_webhook_hmac_key_encrypted)
    return stored ?? (id === DEFAULT_ORGANIZATION_ID ? this.#o.config.LAGO_WEBHOOK_HMAC_KEY : undefined)
  }

  async webhookSecret (id: string): Promise<string | undefined> {
    const row = await this.#existing(id)
    const stored = this.#decrypt(row, 'webhook_secret', row.webhook_secret_encrypted)
    return stored ?? (id === DEFAULT_ORGANIZATION_ID ? this.#o.config.WEBHOOK_SECRET : undefined)
  }

  async litellmCredentials (id: string): Promise<LiteLLMCredentials | null> {
    const row = await this.#existing(id)
    const isDefault = id === DEFAULT_ORGANIZATION_ID
    const url = row.litellm_url ?? (isDefault ? this.#o.config.LITELLM_URL : undefined)
    const masterKey = this.#decrypt(row, 'litellm_master_key', row.litellm_master_key_encrypted) ?? (isDefault ? this.#o.config.LITELLM_MASTER_KEY : undefined)
    return url !== undefined && masterKey !== undefined ? { url, masterKey } : null
  }

  async create (input: NewOrganization): Promise<Organization> {
    const row = await insertOrganization(this.#o.db, {
      id: input.id,
      name: input.name,
      lago_api_url: input.lagoApiUrl ?? null,
      lago_api_key_encrypted: this.#encrypt(input.id, 'lago_api_key', input.lagoApiKey) ?? null,
      lago_organization_id: input.lagoOrganizationId ?? null,
      lago_webhook_hmac_key_encrypted: this.#encrypt(input.id, 'lago_webhook_hmac_key', input.lagoWebhookHmacKey) ?? null,
      webhook_secret_encrypted: this.#encrypt(input.id, 'webhook_secret', input.webhookSecret) ?? null,
      metric_code: input.metricCode ?? null,
      plan_code: input.planCode ?? null,
      auto_provision_customers: input.autoProvisionCustomers ?? null,
      customer_fields: input.customerFields ?? null,
      litellm_url: input.litellmUrl ?? null,
      litellm_master_key_encrypted: this.#encrypt(input.id, 'litellm_master_key', input.litellmMasterKey) ?? null
    })
    if (row === null) throw new OrganizationExistsError(input.id)
    return this.#stored(row)
  }

  async update (id: string, patch: OrganizationUpdate): Promise<Organization> {
    await this.#existing(id)
    const values: OrganizationPatch = {}
    if (patch.name !== undefined) values.name = patch.name
    if (patch.lagoApiUrl !== undefined) values.lago_api_url = patch.lagoApiUrl
    if (patch.lagoOrganizationId !== undefined) values.lago_organization_id = patch.lagoOrganizationId
    if (patch.lagoWebhookHmacKey !== undefined) values.lago_webhook_hmac_key_encrypted = this.#encrypt(id, 'lago_webhook_hmac_key', patch.lagoWebhookHmacKey)
    if (patch.webhookSecret !== undefined) values.webhook_secret_encrypted = this.#encrypt(id, 'webhook_secret', patch.webhookSecret)
    if (patch.metricCode !== undefined) values.metric_code = patch.metricCode
    if (patch.planCode !== undefined) values.plan_code = patch.planCode
    if (patch.autoProvisionCustomers !== undefined) values.auto_provision_customers = patch.autoProvisionCustomers
    if (patch.customerFields !== undefined) values.customer_fields = patch.customerFields
    if (patch.litellmUrl !== undefined) values.litellm_url = patch.litellmUrl
    if (patch.litellmMasterKey !== undefined) values.litellm_master_key_encrypted = this.#encrypt(id, 'litellm_master_key', patch.litellmMasterKey)
    if (patch.status !== undefined) values.status = patch.status
    const row = await updateOrganization(this.#o.db, id, values)
    if (row === undefined) throw new OrganizationNotFoundError(id)
    return this.#stored(row)
  }

  async rotateLagoKey (id: string, apiKey: string): Promise<Organization> {
    await this.#existing(id)
    const row = await updateOrganization(this.#o.db, id, { lago_api_key_encrypted: this.#encrypt(id, 'lago_api_key', apiKey) })
    if (row === undefined) throw new OrganizationNotFoundError(id)
    return this.#stored(row)
  }

  async delete (id: string): Promise<Record<string, number>> {
    if (id === DEFAULT_ORGANIZATION_ID || id === UNROUTED_ORGANIZATION_ID) throw new OrganizationProtectedError(id)
    const result = await purgeOrganization(this.#o.db, id)
    if (result === 'not_found') throw new OrganizationNotFoundError(id)
    if (result === 'active') throw new OrganizationActiveError(id, id)
    this.#rows.delete(id)
    for (const [digest, token] of this.#tokens) if (token.organizationId === id) this.#tokens.delete(digest)
    for (const [route, organizationId] of this.#routes) if (organizationId === id) this.#routes.delete(route)
    this.#changed(id)
    return result.deleted
  }

  #stored (row: OrganizationRow): Organization {
    this.#rows.set(row.id, row)
    this.#changed(row.id)
    return toOrganization(row)
  }
}

export default fp(async function organizations (fastify, opts: { organizationsRefreshMs?: number }) {
  const directory = new OrganizationDirectory({ db: fastify.db, config: fastify.config, log: fastify.log, refreshMs: opts.organizationsRefreshMs })
  await directory.start()
  fastify.decorate('organizations', directory as Organizations)
  fastify.decorateRequest('organizationId', DEFAULT_ORGANIZATION_ID)
  fastify.addHook('onClose', async () => { directory.stop() })
}, { name: 'organizations', dependencies: ['config', 'db'] })
