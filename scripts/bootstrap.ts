// npm run bootstrap: makes sure Lago has the default billable metric and plan (LAGO_METRIC_CODE,
// LAGO_PLAN_CODE and the LAGO_PLAN_* prices), and with PUBLIC_URL, a webhook endpoint for this service. Idempotent: safe to run any number of times. Exits non-zero
// when Lago cannot be reached or refuses, saying why.
import { existsSync } from 'node:fs'
import { loadConfig } from '../plugins/external/config.js'
import { LagoClient } from '../plugins/app/lago/client.js'
import { ensureBillingDefaults } from '../plugins/app/bootstrap/defaults.js'
import { billingDefaults, webhookSignatureAlgo } from '../plugins/app/bootstrap/index.js'
import { ensureWebhookEndpoint, webhookUrl } from '../plugins/app/bootstrap/webhook-endpoint.js'

if (existsSync('.env')) process.loadEnvFile('.env')
const config = loadConfig(process.env)
const lago = new LagoClient({ baseUrl: config.LAGO_API_URL, apiKey: config.LAGO_API_KEY, headersTimeoutMs: config.LAGO_TIMEOUT_MS, requestTimeoutMs: config.LAGO_TIMEOUT_MS })
try {
  const result = await ensureBillingDefaults(lago, billingDefaults(config))
  console.log(`billable metric ${config.LAGO_METRIC_CODE}: ${result.metric}`)
  console.log(`plan ${config.LAGO_PLAN_CODE}: ${result.plan}`)
  if (config.PUBLIC_URL !== undefined) {
    const endpoint = await ensureWebhookEndpoint(lago, config.PUBLIC_URL, webhookSignatureAlgo(config))
    console.log(`webhook endpoint ${webhookUrl(config.PUBLIC_URL)} (${webhookSignatureAlgo(config)}): ${endpoint}`)
  } else {
    console.log('webhook endpoint: not registered (PUBLIC_URL is not set)')
  }
} catch (err) {
  console.error(`bootstrap failed against ${config.LAGO_API_URL}: ${err instanceof Error ? err.message : String(err)}`)
  process.exitCode = 1
} finally {
  await lago.close()
}
