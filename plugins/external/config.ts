import fp from 'fastify-plugin'
import { Value } from '@sinclair/typebox/value'
import { ConfigSchema, SECRET_CONFIG_KEYS, TUNING, type Config, type EnvConfig, type IdentityField, type Tuning } from '../../schemas/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    /** Internal timings (schemas/config.ts TUNING), shortened by tests only. */
    tuning: Tuning
  }
}

export class ConfigError extends Error {
  constructor (readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
  }
}

/**
 * Parses the environment once. Unknown variables are ignored; empty strings count as unset so that
 * `FOO=` in an env file means "use the default". Throws ConfigError naming every bad variable.
 */
export function loadConfig (env: Record<string, string | undefined>): Config {
  const keys = Object.keys(ConfigSchema.properties) as Array<keyof Config>
  const raw: Record<string, unknown> = {}
  for (const key of keys) {
    const value = env[key]
    if (value !== undefined && value.trim() !== '') raw[key] = value.trim()
  }
  const candidate = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, raw))
  const problems: string[] = []
  for (const error of Value.Errors(ConfigSchema, candidate)) {
    const key = error.path.replace(/^\//, '') as keyof Config
    if (problems.some((p) => p.startsWith(`${key}:`))) continue
    const shown = SECRET_CONFIG_KEYS.includes(key) || raw[key] === undefined ? '' : ` (got "${String(raw[key])}")`
    problems.push(`${key}: ${raw[key] === undefined ? 'is required' : error.message}${shown}`)
  }
  if (problems.length > 0) throw new ConfigError(problems)
  const read = candidate as EnvConfig
  // Lists are decoded here, once: the rest of the service reads arrays.
  const config: Config = {
    ...read,
    API_KEYS: listOf(read.API_KEYS),
    ADMIN_API_KEYS: listOf(read.ADMIN_API_KEYS),
    WEBHOOK_TOKENS: listOf(read.WEBHOOK_TOKENS),
    LITELLM_CUSTOMER_FIELDS: [...new Set(listOf(read.LITELLM_CUSTOMER_FIELDS) as IdentityField[])],
    LAGO_WEBHOOK_ISSUER: listOf(read.LAGO_WEBHOOK_ISSUER ?? read.LAGO_API_URL)
  }

  // Security is set explicitly (WEBHOOK_AUTH), never inferred from NODE_ENV.
  const webhookAuthConfigured = config.WEBHOOK_SECRET !== undefined || config.WEBHOOK_TOKENS.length > 0
  config.WEBHOOK_AUTH ??= webhookAuthConfigured ? 'required' : 'none'
  if (config.WEBHOOK_AUTH === 'required' && !webhookAuthConfigured) {
    throw new ConfigError(['WEBHOOK_SECRET or WEBHOOK_TOKENS: is required when WEBHOOK_AUTH=required ' +
      '(set WEBHOOK_AUTH=none to run the ingestion webhooks without authentication on purpose)'])
  }
  if (config.WEBHOOK_AUTH === 'none' && webhookAuthConfigured) {
    throw new ConfigError(['WEBHOOK_AUTH: is "none" while WEBHOOK_SECRET or WEBHOOK_TOKENS is set; remove one of them ' +
      '(none would leave ingestion open)'])
  }
  return config
}

/** Splits a comma-separated value (a variable, a query parameter) into its non-empty, trimmed items. */
export function listOf (value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0)
}

export default fp<{ config: Config, tuning?: Partial<Tuning> }>(async function config (fastify, opts) {
  fastify.decorate('config', opts.config)
  fastify.decorate('tuning', { ...TUNING, ...opts.tuning })
}, { name: 'config' })
