import t from 'tap'
import { LagoOrganizationRouter, type OrganizationDirectory } from '../../../../plugins/app/lago-webhooks/routing.js'

/** An in-memory directory: our organizations and the Lago organization ids known so far. */
function directory (known: Record<string, string | null>): OrganizationDirectory & { known: Record<string, string | null> } {
  return {
    known,
    soleUnidentified: async () => Object.keys(known).length === 1 && Object.values(known)[0] === null ? Object.keys(known)[0] : null,
    byLagoOrganizationId: async (lagoId) => Object.entries(known).find(([, l]) => l === lagoId)?.[0] ?? null,
    askable: async () => Object.entries(known).map(([organization, lagoOrganizationId]) => ({ organization, lagoOrganizationId })),
    setLagoOrganizationId: async (id, lagoId) => { known[id] = lagoId }
  }
}

t.test('a known Lago organization is routed without asking any Lago', async (t) => {
  const asked: string[] = []
  const router = new LagoOrganizationRouter({ directory: directory({ default: 'lago-a', b: 'lago-b' }), lagoOrganizationIdOf: async (id) => { asked.push(id); return null } })
  t.same(await router.route('lago-b'), { organization: 'b' })
  t.same(await router.route('lago-a'), { organization: 'default' })
  t.same(asked, [])
})

t.test('an unknown id is learned from the Lago of each organization that does not know its own yet, and stored', async (t) => {
  const dir = directory({ default: 'lago-a', b: null, c: null })
  const asked: string[] = []
  const lagoOf: Record<string, string> = { default: 'lago-a', b: 'lago-b', c: 'lago-c' }
  const router = new LagoOrganizationRouter({ directory: dir, lagoOrganizationIdOf: async (id) => { asked.push(id); return lagoOf[id] } })
  t.same(await router.route('lago-c'), { organization: 'c' })
  t.same(asked.sort(), ['b', 'c', 'default'], 'each organization asked its own Lago')
  t.same(dir.known, { default: 'lago-a', b: 'lago-b', c: 'lago-c' }, 'both answers stored')
  t.same(await router.route('lago-b'), { organization: 'b' })
  t.equal(asked.length, 3, 'nothing asked again')
})

t.test('an organization that moved to another Lago has its stale id replaced', async (t) => {
  const dir = directory({ default: 'lago-old' })
  const router = new LagoOrganizationRouter({ directory: dir, lagoOrganizationIdOf: async () => 'lago-new' })
  t.same(await router.route('lago-new'), { organization: 'default' })
  t.same(dir.known, { default: 'lago-new' })
})

t.test('an id that is none of ours is unknown, and forged ids cannot make us ask Lago more than once per interval', async (t) => {
  let now = 0
  let asks = 0
  const router = new LagoOrganizationRouter({ directory: directory({ default: 'lago-a', b: null }), lagoOrganizationIdOf: async () => { asks++; return null }, learnIntervalMs: 1000, now: () => now })
  t.match(await router.route('forged-1'), { unknown: /forged-1/ })
  t.match(await router.route('forged-2'), { unknown: /forged-2/ })
  t.match(await Promise.all([router.route('forged-3'), router.route('forged-4')]), [{ unknown: String }, { unknown: String }])
  t.equal(asks, 2, 'one learning pass (each organization asked once) within the interval')
  now += 1000
  await router.route('forged-5')
  t.equal(asks, 4, 'another once the interval passed')
})

t.test('a Lago that cannot be asked makes the answer unavailable (Lago retries), and the next delivery asks again', async (t) => {
  let down = true
  const dir = directory({ default: 'lago-a', b: null })
  const router = new LagoOrganizationRouter({
    directory: dir,
    lagoOrganizationIdOf: async (id) => { if (down) throw new Error('connection refused'); return id === 'b' ? 'lago-b' : 'lago-a' },
    learnIntervalMs: 60_000
  })
  t.match(await router.route('lago-b'), { unavailable: /organization\(s\) .*b/ })
  down = false
  t.same(await router.route('lago-b'), { organization: 'b' }, 'learned on the retry, without waiting for the interval')
})

t.test('a single-organization setup whose Lago names no webhook endpoint routes to its sole organization, to adopt once verified', async (t) => {
  const dir = directory({ default: null })
  const router = new LagoOrganizationRouter({ directory: dir, lagoOrganizationIdOf: async () => null })
  t.same(await router.route('lago-a'), { organization: 'default', adopt: true })
  t.same(dir.known, { default: null }, 'nothing recorded before the signature is checked')
  await dir.setLagoOrganizationId('default', 'lago-a')
  t.same(await router.route('lago-a'), { organization: 'default' })
  t.match(await router.route('lago-x'), { unknown: /lago-x/ }, 'once known, another Lago organization is not ours')
  const two = new LagoOrganizationRouter({ directory: directory({ default: null, b: null }), lagoOrganizationIdOf: async () => null })
  t.match(await two.route('lago-a'), { unknown: String }, 'with two organizations, nothing is guessed')
})

t.test('an id that cannot be recorded (another organization holds it) is reported, and learning goes on', async (t) => {
  const dir = directory({ default: 'lago-a', b: null, c: null })
  const set = dir.setLagoOrganizationId
  dir.setLagoOrganizationId = async (id, lagoId) => {
    if (Object.values(dir.known).includes(lagoId)) throw new Error('duplicate key value violates unique constraint')
    await set(id, lagoId)
  }
  const reported: string[] = []
  const lagoOf: Record<string, string> = { default: 'lago-a', b: 'lago-a', c: 'lago-c' }
  const router = new LagoOrganizationRouter({ directory: dir, lagoOrganizationIdOf: async (id) => lagoOf[id], onLearnError: (id) => reported.push(id) })
  t.same(await router.route('lago-c'), { organization: 'c' }, 'c learned although b could not be')
  t.same(reported, ['b'])
  t.equal(dir.known.b, null)
})
