// Writes the service's OpenAPI document (the one GET /docs/json serves) for REST client generators:
//   npm run openapi                 -> ./openapi.json
//   npm run openapi -- api.json     -> that file;  npm run --silent openapi -- -   -> stdout
// It builds the app from the environment like the server (Redis optional), without starting the forwarder,
// the Lago bootstrap or migrations, and without listening.
import { existsSync, writeFileSync } from 'node:fs'
import { buildApp } from '../app.js'
import { loadConfig } from '../plugins/external/config.js'

if (existsSync('.env')) process.loadEnvFile('.env')
const config = loadConfig({ ...process.env, FORWARDER_ENABLED: 'false', BOOTSTRAP_ON_START: 'false', RUN_MIGRATIONS: 'false', LOG_LEVEL: 'error' })
const app = await buildApp(config)
await app.ready()
const document = `${JSON.stringify(app.swagger(), null, 2)}\n`
await app.close()
const target = process.argv[2] ?? 'openapi.json'
if (target === '-') process.stdout.write(document)
else {
  writeFileSync(target, document)
  console.log(`wrote ${target}`)
}
