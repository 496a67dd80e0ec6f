// The fixed-rate load generator of npm run bench (mixed), run as a process of its own (pinned to one CPU by the
// caller). autocannon's rate is a per-connection quota per second: every connection sends as fast as it can until
// its quota is spent, then waits for the next second, so "half the maximum" arrived as the maximum for half of each
// second. Here requests are spread evenly (request i is due at start + i / rate) over keep-alive connections (see
// connectionCap), and each latency counts from when its request was due, not from when a connection was free to send
// it (no coordinated omission: a stall of the server shows in every request it delayed). The first WARM_UP_SECONDS
// are not counted: this process's connections and code, and what the run starts from (the caller warms the service
// and takes a CHECKPOINT first, after which the first change of each page logs it whole: on a slow machine the
// queue built in the first second still showed at 3-4 s, 100-290 ms). Reads its options from the JSON file named by argv[2], prints the result as JSON.
import { readFileSync } from 'node:fs'
import { Pool } from 'undici'

const opts = JSON.parse(readFileSync(process.argv[2], 'utf8')) as { url: string, path: string, body: string, connections: number, seconds: number, rate: number, idPrefix: string }
// A due request must not wait long for a free connection of this process, or the latency measured is this process's
// queue. With 100 connections at 8,586 req/s, any answer slower than 11.6 ms (100 / rate) made this pool the
// bottleneck: p99s of 300-1,655 ms while the service held under 100 requests and answered each in about 10 ms. So the
// pool may open as many connections as 25 ms of requests need (what 100 gave at 4,000 req/s; undici opens one only
// when all are busy). Not more: 100 ms' worth (859) made this process's own sending lag and the alone p99 two to
// three times worse.
const connectionCap = Math.max(opts.connections, Math.ceil(opts.rate / 40))
const pool = new Pool(opts.url, { connections: connectionCap, pipelining: 1 })
/**
 * Measured once the warm-up is over: the most connections open, and the most due requests waiting here for one (0: the
 * loader never held a request back; the latencies count that wait anyway, from when each request was due).
 */
let connectionsUsed = 0
let waitingForConnection = 0
const WARM_UP_SECONDS = 5
const warmUp = Math.round(opts.rate * WARM_UP_SECONDS)
const total = warmUp + Math.round(opts.rate * opts.seconds)
const latencies = new Float64Array(total)
/** How late each request left this process (its own lag, part of the latency): reported, so that it can be told apart. */
const lags = new Float64Array(total)
let ok = 0
let errors = 0

async function send (i: number, due: number): Promise<void> {
  lags[i] = performance.now() - due
  try {
    const { statusCode, body } = await pool.request({
      method: 'POST',
      path: opts.path,
      headers: { 'content-type': 'application/json' },
      body: opts.body.replaceAll('@@id@@', `${opts.idPrefix}-${i}`)
    })
    await body.dump()
    if (i < warmUp) return
    if (statusCode >= 200 && statusCode < 300) ok++
    else errors++
  } catch {
    if (i >= warmUp) errors++
  }
  latencies[i] = performance.now() - due
}

const start = performance.now()
const measuredFrom = start + WARM_UP_SECONDS * 1000
const inFlight: Array<Promise<void>> = []
let next = 0
await new Promise<void>((resolve) => {
  const tick = (): void => {
    const now = performance.now()
    for (; next < total && start + next * 1000 / opts.rate <= now; next++) inFlight.push(send(next, start + next * 1000 / opts.rate))
    if (now >= measuredFrom) {
      connectionsUsed = Math.max(connectionsUsed, pool.stats.connected)
      waitingForConnection = Math.max(waitingForConnection, pool.stats.queued)
    }
    if (next < total) setTimeout(tick, 1)
    else resolve()
  }
  tick()
})
await Promise.all(inFlight)
const seconds = (performance.now() - measuredFrom) / 1000
await pool.close()

const percentile = (values: Float64Array, p: number): number => {
  const sorted = Array.from(values).sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]
}
const measured = { latencies: latencies.subarray(warmUp), lags: lags.subarray(warmUp) }
process.stdout.write(`${JSON.stringify({
  requests: total - warmUp, seconds, ok, errors, p50: percentile(measured.latencies, 50), p99: percentile(measured.latencies, 99), sendLagP99: percentile(measured.lags, 99), connectionsUsed, connectionCap, waitingForConnection
})}\n`)
