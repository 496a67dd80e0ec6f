import { existsSync } from 'node:fs'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './plugins/external/config.js'
import { StartupError } from './db/startup-errors.js'
import { stopEmbeddedServers } from './db/embedded-postgres.js'
import { openDatabase } from './db/connection.js'
import pino from 'pino'
import { setFlagsFromString } from 'node:v8'

// V8 lets the old generation grow to about 4x what survived the last full collection before collecting again: for a
// service whose live heap is ~35 MB and which allocates steadily (a forwarder drain promotes ~14 MB/s), RSS climbed
// to 220-240 MB of garbage. 2x keeps a 1,000,000-event drain at 166-178 MB, flat; 1.5x kept it near 150 MB but cost
// generic_api batches (1.3 MB bodies) 9 % in garbage collection (15,117 / 15,230 against 14,262 / 13,136 calls/s).
// A growth factor, not a cap: a large request can still use what it needs (it also lifts V8's 1.1-1.3x when it
// saves memory to 2x). Read by V8 at each collection, so set here.
setFlagsFromString('--heap-growing-percent=100')

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

// A signal while starting (before closeWithGrace takes over): stop the embedded PostgreSQL rather than leave it
// running detached (the next start would adopt it, but Ctrl-C should mean "everything stops").
const abortStart = (): void => { stopEmbeddedServers().finally(() => process.exit(1)) }
process.once('SIGTERM', abortStart)
process.once('SIGINT', abortStart)
let app
try {
  // The embedded PostgreSQL (DATABASE_URL unset) starts first: a first initdb may outlast the plugin timeout.
  if (config.DATABASE_URL === undefined) {
    const log = pino({ level: config.LOG_LEVEL })
    await openDatabase(config, (message) => log.info(message))
  }
  app = await buildApp(config)
} catch (err) {
  // The embedded PostgreSQL runs detached: stop it when a later plugin failed the start.
  await stopEmbeddedServers()
  // A dependency missing or refusing at start (DATABASE_URL, DATA_DIR…): one line naming it, no stack trace.
  if (!(err instanceof StartupError)) throw err
  process.stderr.write(`lago-api-integration cannot start. ${err.message}\n`)
  process.exit(1)
}

process.off('SIGTERM', abortStart)
process.off('SIGINT', abortStart)

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
