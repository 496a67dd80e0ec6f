import { existsSync } from 'node:fs'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './plugins/external/config.js'

// A local .env is a convenience for development; real deployments pass the environment.
if (existsSync('.env')) process.loadEnvFile('.env')

let config
try {
  config = loadConfig(process.env)
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`lago-api-integration cannot start. ${err.message}\nSee .env.example for every variable.\n`)
  process.exit(1)
}

const app = await buildApp(config)

// SIGTERM/SIGINT: stop accepting connections, let in-flight requests finish (their events are committed), run
// every onClose hook (writer drain, pools), then exit. A second signal or the grace period forces the exit.
closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'shutting down after an unexpected error')
  else app.log.info({ signal }, 'shutting down')
  await app.close()
})

try {
  await app.listen({ host: config.HOST, port: config.PORT })
} catch (err) {
  app.log.fatal({ err }, 'could not start')
  await app.close().catch(() => {})
  process.exit(1)
}
