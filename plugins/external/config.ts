import fp from 'fastify-plugin'
import { Value } from '@sinclair/typebox/value'
import { ConfigSchema, SECRET_CONFIG_KEYS, type Config } from '../../schemas/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
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
  const config = candidate as Config

  const webhookAuthConfigured = config.WEBHOOK_SECRET !== undefined || config.WEBHOOK_TOKENS !== undefined
  if (config.NODE_ENV === 'production' && !webhookAuthConfigured && config.WEBHOOK_AUTH !== 'none') {
    throw new ConfigError([
      'WEBHOOK_SECRET or WEBHOOK_TOKENS: is required when NODE_ENV=production ' +
      '(set WEBHOOK_AUTH=none to run the ingestion webhooks without authentication on purpose)'
    ])
  }
  return config
}

/** Splits a comma-separated variable into its non-empty, trimmed items. */
export function listOf (value: string | undefined): string[] {
  return (value ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0)
}

export default fp<{ config: Config }>(async function config (fastify, opts) {
  fastify.decorate('config', opts.config)
}, { name: 'config' })
