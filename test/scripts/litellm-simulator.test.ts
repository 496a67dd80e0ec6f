import t from 'tap'
import { request } from 'undici'
import { litellmSimulator } from '../helpers/litellm.js'

t.test('the LiteLLM simulator answers /spend/logs and /spend/logs/ui as LiteLLM does', async (t) => {
  const sim = await litellmSimulator(t)
  const get = async (path: string, key = sim.masterKey) => {
    const res = await request(`${sim.url}${path}`, { headers: { authorization: `Bearer ${key}` } })
    return { status: res.statusCode, body: await res.body.json() as any }
  }
  const day = Date.parse('2026-11-20T00:00:00Z') * 1000
  const calls = [0, 1, 2].map((h) => sim.record({ team: 'team_a', endUser: 'cust', startMicros: day + h * 3_600_000_000 + 123_456 }))
  sim.record({ team: 'team_b', startMicros: day + 86_400_000_000 + 1000 })

  t.same(await get('/spend/logs', 'sk-wrong'), { status: 401, body: { error: { message: 'Authentication Error, Invalid proxy server token passed. Received API Key = sk-...', type: 'auth_error', param: 'None', code: '401' } } })
  t.equal((await get('/spend/logs')).body.length, 4, 'no dates: every row')
  const summary = await get('/spend/logs?start_date=2026-11-20&end_date=2026-11-21')
  t.match(summary.body, [{ startTime: '2026-11-20', spend: Number }], 'dates without summarize=false: spend per day')
  const rows = (await get('/spend/logs?start_date=2026-11-20&end_date=2026-11-21&summarize=false')).body
  t.same(rows.map((r: { request_id: string }) => r.request_id), calls.map((c) => c.call.responseId).reverse(), 'rows, newest first; the end date is midnight, so the next day is out')
  t.equal(rows[2].startTime, '2026-11-20T00:00:00.123000+00:00', 'Python isoformat of a millisecond column')
  t.match(rows[0], { api_key: /^[0-9a-f]{64}$/, team_id: 'team_a', end_user: 'cust', cache_hit: 'False', status: 'success', metadata: { user_api_key_team_id: 'team_a' } })

  t.match(await get('/spend/logs/ui?page=1'), { status: 400, body: { error: { message: 'Start date and end date are required' } } })
  t.match(await get('/spend/logs/ui?start_date=2026-11-20&end_date=2026-11-21'), { status: 500 }, 'the ui API wants seconds')
  t.match(await get('/spend/logs/ui?start_date=2026-11-20%2000:00:00&end_date=2026-11-21%2000:00:00&page_size=101'), { status: 422, body: { detail: [{ loc: ['query', 'page_size'] }] } })
  const page = await get('/spend/logs/ui?start_date=2026-11-20%2000:00:00&end_date=2026-11-22%2000:00:00&page=2&page_size=3')
  t.match(page.body, { total: 4, page: 2, page_size: 3, total_pages: 2, data: [{ request_id: calls[0].call.responseId }] })
  t.equal((await get('/spend/logs/ui?start_date=2026-11-20%2000:00:00&end_date=2026-11-20%2001:00:00')).body.total, 1, 'both bounds inclusive, to the second')

  sim.faults.failNext(1, 500)
  t.equal((await get('/spend/logs')).status, 500)
  t.equal((await get('/spend/logs')).status, 200)
})
