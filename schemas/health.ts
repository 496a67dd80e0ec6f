import { Type, type Static } from '@sinclair/typebox'

export const DependencyCheck = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  latency_ms: Type.Optional(Type.Number()),
  error: Type.Optional(Type.String())
})
export type DependencyCheckBody = Static<typeof DependencyCheck>

export const RedisCheck = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('not_configured')], {
    description: 'Redis is optional: down or not_configured never makes the service unready'
  }),
  latency_ms: Type.Optional(Type.Number()),
  error: Type.Optional(Type.String()),
  since: Type.Optional(Type.String({ format: 'date-time', description: 'Down since' })),
  fallback: Type.Optional(Type.String({ description: 'What is used instead of Redis meanwhile' }))
})
export type RedisCheckBody = Static<typeof RedisCheck>

export const Checks = Type.Object({ database: DependencyCheck, redis: RedisCheck })
export type ChecksBody = Static<typeof Checks>

export const ReadinessResponse = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
  checks: Checks
})

export const LivenessResponse = Type.Object({ status: Type.Literal('ok'), uptime_seconds: Type.Number() })

export const ForwarderHealth = Type.Object({
  status: Type.Union(['running', 'lago_unavailable', 'rate_limited', 'unauthorized', 'stopped', 'disabled'].map((s) => Type.Literal(s)), {
    description: 'unauthorized: Lago refuses LAGO_API_KEY (forwarding paused, nothing dead-lettered); lago_unavailable / rate_limited: paused, probing'
  }),
  since: Type.Optional(Type.String({ format: 'date-time' })),
  next_probe_at: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()])),
  last_error: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  reason: Type.Optional(Type.String({ description: 'Why forwarding is disabled' }))
})

export const BootstrapHealth = Type.Object({
  status: Type.Union([Type.Literal('disabled'), Type.Literal('pending'), Type.Literal('done'), Type.Literal('failing')]),
  last_error: Type.Union([Type.String(), Type.Null()])
})

export const OrganizationBacklog = Type.Object({
  unsent: Type.Integer({ description: 'Usage events not yet in Lago (pending or failed), counted up to 100000' }),
  oldest_unsent_age_seconds: Type.Union([Type.Integer(), Type.Null()], { description: 'Age of the oldest of them (since received)' })
})

export const OrganizationForwarding = Type.Object({
  id: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('disabled')], { description: 'A disabled organization is not forwarded: its events wait' }),
  forwarder: ForwarderHealth,
  backlog: OrganizationBacklog,
  bootstrap: Type.Optional(BootstrapHealth)
}, { description: 'One organization\'s forwarding to its own Lago: its own pause and probe, its own backlog' })
export type OrganizationForwardingBody = Static<typeof OrganizationForwarding>

export const HealthResponse = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  uptime_seconds: Type.Number(),
  checks: Checks,
  database: Type.Object({
    type: Type.Union([Type.Literal('external'), Type.Literal('embedded')], { description: 'external: DATABASE_URL; embedded: the PostgreSQL started from DATA_DIR because DATABASE_URL is unset' }),
    description: Type.String({ description: 'e.g. "embedded PostgreSQL 17.10 in ./data" or "PostgreSQL at db:5432/lago_integration" (never a password)' })
  }),
  ingestion: Type.Object({
    queued: Type.Integer({ description: 'Events waiting for the next group commit' }),
    writing: Type.Integer({ description: 'Group commits in flight' })
  }),
  forwarder: ForwarderHealth,
  bootstrap: BootstrapHealth,
  organizations: Type.Array(OrganizationForwarding, { description: 'Forwarding per organization: one organization\'s Lago trouble pauses only it' })
})
