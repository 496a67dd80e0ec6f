import t from 'tap'
import { ConfigError, listOf, loadConfig } from '../../../plugins/external/config.js'

t.test('defaults serve on 0.0.0.0:3002 with an embedded PostgreSQL in ./data', async (t) => {
  const config = loadConfig({})
  t.match(config, { HOST: '0.0.0.0', PORT: 3002, LOG_LEVEL: 'info', WEBHOOK_AUTH: 'none', RUN_MIGRATIONS: true, WEBHOOK_BATCH_MAX_EVENTS: 1000 })
  t.equal(config.DATABASE_URL, undefined, 'no DATABASE_URL: the embedded PostgreSQL')
  t.equal(config.DATA_DIR, './data')
  t.equal(loadConfig({ DATABASE_URL: ' ' }).DATABASE_URL, undefined, 'empty counts as unset')
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

t.test('WEBHOOK_AUTH, not NODE_ENV, decides whether ingestion may be open', async (t) => {
  const secret = `whsec_${Buffer.alloc(24, 7).toString('base64')}`
  for (const NODE_ENV of [undefined, 'production', 'development']) {
    t.equal(loadConfig({ NODE_ENV }).WEBHOOK_AUTH, 'none', `${NODE_ENV}: nothing configured is open`)
    t.equal(loadConfig({ NODE_ENV, WEBHOOK_TOKENS: 'a' }).WEBHOOK_AUTH, 'required', `${NODE_ENV}: a token makes it required`)
    t.equal(loadConfig({ NODE_ENV, WEBHOOK_SECRET: secret }).WEBHOOK_AUTH, 'required', `${NODE_ENV}: a secret makes it required`)
    t.throws(() => loadConfig({ NODE_ENV, WEBHOOK_AUTH: 'required' }), /WEBHOOK_SECRET or WEBHOOK_TOKENS: is required when WEBHOOK_AUTH=required/)
    t.throws(() => loadConfig({ NODE_ENV, WEBHOOK_AUTH: 'none', WEBHOOK_TOKENS: 'a' }), /WEBHOOK_AUTH: is "none" while/)
    t.doesNotThrow(() => loadConfig({ NODE_ENV, WEBHOOK_AUTH: 'none' }))
  }
})

t.test('listOf splits comma lists', async (t) => {
  t.same(listOf(' a, b ,,c '), ['a', 'b', 'c'])
  t.same(listOf(undefined), [])
})

t.test('the configuration\'s lists are decoded once, by loadConfig', async (t) => {
  const config = loadConfig({ API_KEYS: ' k1, k2 ,,', WEBHOOK_TOKENS: 'w1', LITELLM_CUSTOMER_FIELDS: 'team, end_user,team', LAGO_API_URL: 'http://lago:3000' })
  t.same(config.API_KEYS, ['k1', 'k2'])
  t.same(config.WEBHOOK_TOKENS, ['w1'])
  t.same(config.LITELLM_CUSTOMER_FIELDS, ['team', 'end_user'], 'in order, without repeats')
  t.same(config.LAGO_WEBHOOK_ISSUER, ['http://lago:3000'], 'the issuer defaults to LAGO_API_URL')
  t.same(loadConfig({ LAGO_WEBHOOK_ISSUER: 'https://a, https://b' }).LAGO_WEBHOOK_ISSUER, ['https://a', 'https://b'])
  t.same(loadConfig({}).API_KEYS, [], 'unset: an empty list')
})
