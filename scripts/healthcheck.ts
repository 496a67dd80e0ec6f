// Container health probe (the slim image has no curl): GET http://127.0.0.1:$PORT<path>, exit 0 on 2xx, 1 otherwise.
//   node dist/scripts/healthcheck.js               -> /health/live (the Containerfile's HEALTHCHECK)
//   node dist/scripts/healthcheck.js /health/ready -> PostgreSQL reachable, Redis optional (compose.yaml)
const path = process.argv[2] ?? '/health/live'
const url = `http://127.0.0.1:${process.env.PORT ?? '3002'}${path}`

try {
  const response = await fetch(url, { signal: AbortSignal.timeout(4000) })
  if (!response.ok) console.error(`${url} answered ${response.status}: ${await response.text()}`)
  process.exit(response.ok ? 0 : 1)
} catch (err) {
  console.error(`${url} unreachable: ${err instanceof Error ? err.message : String(err)}`)
  process.exit(1)
}
