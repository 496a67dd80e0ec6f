import { Type, type Static } from '@sinclair/typebox'

export const DependencyCheck = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  latency_ms: Type.Optional(Type.Number()),
  error: Type.Optional(Type.String())
})
export type DependencyCheckBody = Static<typeof DependencyCheck>

export const Checks = Type.Object({ database: DependencyCheck, redis: DependencyCheck })

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

export const HealthResponse = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]),
  uptime_seconds: Type.Number(),
  checks: Checks,
  ingestion: Type.Object({
    queued: Type.Integer({ description: 'Events waiting for the next group commit' }),
    writing: Type.Integer({ description: 'Group commits in flight' })
  }),
  forwarder: ForwarderHealth,
  bootstrap: BootstrapHealth
})
