/** Length of the windows ingestion's latency is averaged over. */
const WINDOW_MS = 250
/** Windows kept to find ingestion's base latency (the least window mean among them): ten seconds. */
const BASE_WINDOWS = 40

interface Window { start: number, sumMs: number, events: number }

/**
 * Ingestion as the forwarder sees it, from ingestion's commit notifications: whether it committed within the last
 * `windowMs`, and whether its latency (submit to commit, averaged over 250 ms windows) is above its base (the least
 * window mean of the last ten seconds), which says the forwarder's work is slowing it.
 */
export class IngestionActivity {
  #lastCommitAt = Number.NEGATIVE_INFINITY
  #windows: Window[] = []
  #pauseMs = 0
  /** The start of the window the pause last changed on: it changes once per window, whatever the batches. */
  #steppedOn: number | undefined

  // A monotonic clock by default: a wall clock set back would leave no window complete.
  constructor (private readonly windowMs: number, private readonly now: () => number = () => performance.now()) {}

  /** A write of ingestion committed `events` events, which waited `meanLatencyMs` on average since submitted. */
  committed (events = 0, meanLatencyMs?: number): void {
    const now = this.now()
    this.#lastCommitAt = now
    if (meanLatencyMs === undefined || events === 0) return
    let current = this.#windows.at(-1)
    if (current === undefined || now - current.start >= WINDOW_MS) {
      current = { start: now - ((now - (current?.start ?? now)) % WINDOW_MS), sumMs: 0, events: 0 }
      this.#windows.push(current)
      this.#windows = this.#windows.filter((w) => now - w.start < BASE_WINDOWS * WINDOW_MS)
    }
    current.sumMs += meanLatencyMs * events
    current.events += events
  }

  get writing (): boolean {
    return this.now() - this.#lastCommitAt < this.windowMs
  }

  /**
   * The mean latency of the last complete window (and when it started), and the least of the windows kept:
   * undefined before two windows.
   */
  latency (): { recentMs: number, baseMs: number, since: number } | undefined {
    const now = this.now()
    const complete = this.#windows.filter((w) => now - w.start >= WINDOW_MS && now - w.start < BASE_WINDOWS * WINDOW_MS && w.events > 0)
    const recent = complete.at(-1)
    if (recent === undefined || complete.length < 2) return undefined
    return { recentMs: recent.sumMs / recent.events, baseMs: Math.min(...complete.map((w) => w.sumMs / w.events)), since: recent.start }
  }

  /**
   * How long the forwarder waits before its next batch while ingestion writes: doubled (from 10 ms, up to 1 s) at
   * each new window in which ingestion's latency is above half again its base plus 2 ms, else halved (none under
   * 5 ms); none when ingestion is not writing. Once per window, so that one slow window (a GC, a checkpoint) is one
   * step, however many batches, and workers, ask meanwhile.
   * The forwarder takes what ingestion leaves, as a background transfer yields to interactive traffic by the delay it
   * adds to it.
   */
  nextPauseMs (): number {
    const latency = this.latency()
    if (!this.writing || latency === undefined) {
      this.#pauseMs = 0
      return 0
    }
    if (latency.since === this.#steppedOn) return this.#pauseMs
    this.#steppedOn = latency.since
    const slowed = latency.recentMs > latency.baseMs * 1.5 + 2
    this.#pauseMs = slowed ? Math.min(Math.max(this.#pauseMs * 2, 10), 1000) : (this.#pauseMs / 2 < 5 ? 0 : this.#pauseMs / 2)
    return this.#pauseMs
  }
}
