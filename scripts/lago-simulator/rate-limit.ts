/** Lago Cloud's per-organization limits (requests per second). Self-hosted Lago has none, so it is off by default. */
export interface RateLimitSettings {
  /** POST /events and /events/batch. Default 500. */
  events?: number
  /** GET /customers/:id/current_usage. Default 200. */
  usage?: number
  /** Everything else. Default 50. */
  other?: number
}

export interface RateLimitVerdict {
  allowed: boolean
  headers: Record<string, string>
}

type Bucket = 'events' | 'usage' | 'other'

const DEFAULTS: Required<RateLimitSettings> = { events: 500, usage: 200, other: 50 }

export function bucketOf (method: string, route: string): Bucket {
  if (method === 'POST' && (route === '/api/v1/events' || route === '/api/v1/events/batch')) return 'events'
  if (route === '/api/v1/customers/:external_customer_id/current_usage') return 'usage'
  return 'other'
}

/** One-second windows per bucket; every answer carries X-RateLimit-Limit, -Remaining and -Reset (seconds). */
export class RateLimiter {
  private windows = new Map<Bucket, { start: number, count: number }>()
  private readonly limits: Required<RateLimitSettings>

  constructor (settings: RateLimitSettings = {}) {
    this.limits = { ...DEFAULTS, ...settings }
  }

  check (method: string, route: string, now = Date.now()): RateLimitVerdict {
    const bucket = bucketOf(method, route)
    const limit = this.limits[bucket]
    const windowStart = now - (now % 1000)
    let window = this.windows.get(bucket)
    if (window === undefined || window.start !== windowStart) {
      window = { start: windowStart, count: 0 }
      this.windows.set(bucket, window)
    }
    const allowed = window.count < limit
    if (allowed) window.count++
    return {
      allowed,
      headers: {
        'x-ratelimit-limit': String(limit),
        'x-ratelimit-remaining': String(Math.max(0, limit - window.count)),
        'x-ratelimit-reset': String(Math.max(1, Math.ceil((windowStart + 1000 - now) / 1000)))
      }
    }
  }
}

/** The limiter for an option: true means Lago Cloud's defaults, false or absent means none (self-hosted). */
export function rateLimiterFrom (option: boolean | RateLimitSettings | undefined): RateLimiter | null {
  if (option === undefined || option === false) return null
  return new RateLimiter(option === true ? {} : option)
}
