import t from 'tap'
import { ConfigError, listOf, loadConfig } from '../../../plugins/external/config.js'

t.test('defaults serve on 0.0.0.0:3002 against the local PostgreSQL and Redis', async (t) => {
  const config = loadConfig({})
  t.match(config, { HOST: '0.0.0.0', PORT: 3002, LOG_LEVEL: 'info', WEBHOOK_AUTH: 'auto', RUN_MIGRATIONS: true, WEBHOOK_BATCH_MAX_EVENTS: 1000 })
  t.match(config.DATABASE_URL, /^postgres:\/\//)
  t.equal(config.LAGO_API_KEY, undefined)
})

t.test('values are converted to their types; empty means default', async (t) => {
  const config = loadConfig({ PORT: '8080', RUN_MIGRATIONS: 'false', TRUST_PROXY: 'true', LOG_LEVEL: 'debug', HOST: ' ', INGEST_LINGER_MS: '0' })
  t.match(config, { PORT: 8080, RUN_MIGRATIONS: false, TRUST_PROXY: true, LOG_LEVEL: 'debug', HOST: '0.0.0.0', INGEST_LINGER_MS: 0 })
})

t.test('a malformed variable is named, with its value unless it is a secret', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /PORT: .*\(got "abc"\)/],
    [{ PORT: '70000' }, /PORT: /],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL: /],
    [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL: /],
    [{ REDIS_URL: 'localhost:6379' }, /REDIS_URL: /],
    [{ RUN_MIGRATIONS: 'maybe' }, /RUN_MIGRATIONS: /],
    [{ WEBHOOK_SECRET: 'short' }, /WEBHOOK_SECRET: /],
    [{ WEBHOOK_AUTH: 'sometimes' }, /WEBHOOK_AUTH: /],
    [{ INGEST_MAX_BATCH_ROWS: '0' }, /INGEST_MAX_BATCH_ROWS: /]
  ]
  for (const [env, message] of cases) {
    const err = (() => { try { loadConfig(env); return undefined } catch (e) { return e } })()
    t.ok(err instanceof ConfigError, `${Object.keys(env)[0]} is refused`)
    t.match((err as Error).message, message)
  }
  const secret = (() => { try { loadConfig({ DATABASE_URL: 'mysql://user:hunter2@db/x' }) } catch (e) { return (e as Error).message } })()
  t.notMatch(secret, /hunter2/, 'secret values are never echoed')
  const several = (() => { try { loadConfig({ PORT: 'x', LOG_LEVEL: 'y' }) } catch (e) { return (e as ConfigError).problems } })()
  t.equal(several?.length, 2, 'every bad variable is reported at once')
})

t.test('production refuses open webhooks unless WEBHOOK_AUTH=none', async (t) => {
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /WEBHOOK_SECRET or WEBHOOK_TOKENS: is required when NODE_ENV=production/)
  t.doesNotThrow(() => loadConfig({ NODE_ENV: 'production', WEBHOOK_AUTH: 'none' }))
  t.doesNotThrow(() => loadConfig({ NODE_ENV: 'production', WEBHOOK_TOKENS: 'a' }))
  t.doesNotThrow(() => loadConfig({ NODE_ENV: 'production', WEBHOOK_SECRET: `whsec_${Buffer.alloc(24, 7).toString('base64')}` }))
})

t.test('listOf splits comma lists', async (t) => {
  t.same(listOf(' a, b ,,c '), ['a', 'b', 'c'])
  t.same(listOf(undefined), [])
})
