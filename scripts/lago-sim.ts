// Runs the Lago simulator on its own, for local trials and the benchmark:
//   npm run lago:sim
// Environment: LAGO_SIM_PORT (default 3000, Lago's own port, so LAGO_API_URL's default reaches it),
// LAGO_SIM_HOST (127.0.0.1), LAGO_SIM_API_KEY (else LAGO_API_KEY, else "lago-simulator-key"),
// LAGO_SIM_STRICT_EVENTS=true, LAGO_SIM_RATE_LIMIT=true (Lago Cloud's limits), LAGO_SIM_CONTROL_TOKEN,
// LAGO_SIM_WEBHOOK_HMAC_KEY (hmac webhooks), LAGO_SIM_WEBHOOK_ISSUER (iss of jwt webhooks; default its URL).
import { startLagoSimulator } from './lago-simulator/index.js'

const env = process.env
const flag = (value: string | undefined): boolean => value === 'true' || value === '1'
const port = Number(env.LAGO_SIM_PORT ?? 3000)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`LAGO_SIM_PORT must be a port number, got "${env.LAGO_SIM_PORT}"\n`)
  process.exit(1)
}

const sim = await startLagoSimulator({
  host: env.LAGO_SIM_HOST ?? '127.0.0.1',
  port,
  apiKey: env.LAGO_SIM_API_KEY ?? env.LAGO_API_KEY ?? 'lago-simulator-key',
  strictEvents: flag(env.LAGO_SIM_STRICT_EVENTS),
  rateLimit: flag(env.LAGO_SIM_RATE_LIMIT),
  controlToken: env.LAGO_SIM_CONTROL_TOKEN,
  logger: flag(env.LAGO_SIM_LOG),
  webhooks: { hmacKey: env.LAGO_SIM_WEBHOOK_HMAC_KEY, issuer: env.LAGO_SIM_WEBHOOK_ISSUER }
})

process.stdout.write([
  `Lago simulator listening on ${sim.url}`,
  `  LAGO_API_URL=${sim.url}`,
  `  LAGO_API_KEY=${sim.apiKey}`,
  `  control API: ${sim.url}/__simulator (state, requests, events, unbilled-events, faults, close-period, webhooks)`,
  ''
].join('\n'))

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    sim.close().then(() => process.exit(0), () => process.exit(1))
  })
}
