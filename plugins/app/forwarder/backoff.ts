export interface BackoffPolicy {
  /** Ceiling of the first delay. */
  baseMs: number
  /** No delay is longer than this, whatever the attempt number. */
  maxMs: number
}

/**
 * Capped exponential backoff with full jitter (a uniform pick between 0 and the capped exponential), which
 * spreads the retries of many events and replicas instead of synchronising them.
 */
export function backoffDelay (attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const exponential = policy.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30))
  return Math.floor(random() * Math.min(policy.maxMs, exponential))
}

/** The wait before the next try: the jittered backoff, but never sooner than Lago's Retry-After (already capped). */
export function retryDelay (attempt: number, policy: BackoffPolicy, retryAfterMs: number | null, random: () => number = Math.random): number {
  return Math.max(backoffDelay(attempt, policy, random), retryAfterMs ?? 0)
}
