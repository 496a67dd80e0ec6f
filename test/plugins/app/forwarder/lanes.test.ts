import t from 'tap'
import { OrganizationLanes, type Turn } from '../../../../plugins/app/forwarder/lanes.js'

const PROBE = { baseMs: 100, maxMs: 1000 }

/** A clock the test moves by hand. */
function clock (start = 1_000_000): { now: () => number, advance: (ms: number) => void } {
  let at = start
  return { now: () => at, advance: (ms) => { at += ms } }
}

const claims = (lanes: OrganizationLanes, n: number): string[] => Array.from({ length: n }, () => {
  const turn = lanes.next(1000)
  return 'organization' in turn ? `${turn.kind}:${turn.organization}` : `wait:${turn.waitMs}`
})

t.test('organizations take turns, one batch each, whatever their backlog', async (t) => {
  const lanes = new OrganizationLanes(PROBE, clock().now)
  lanes.setOrganizations(['a', 'b', 'c'])
  // a has a million events, b and c a few: the claims alternate all the same.
  t.same(claims(lanes, 7), ['claim:a', 'claim:b', 'claim:c', 'claim:a', 'claim:b', 'claim:c', 'claim:a'])
})

t.test('an organization with nothing due is skipped until woken or its idle time passes', async (t) => {
  const c = clock()
  const lanes = new OrganizationLanes(PROBE, c.now)
  lanes.setOrganizations(['a', 'b'])
  t.same(claims(lanes, 2), ['claim:a', 'claim:b'])
  lanes.idle('b', 500, 0)
  t.same(claims(lanes, 3), ['claim:a', 'claim:a', 'claim:a'], 'a busy organization runs at full speed while b is idle')
  lanes.idle('a', 200, 0)
  t.same(lanes.next(1000), { waitMs: 200 }, 'all idle: wait until the first idle time ends')
  lanes.wake('b')
  t.same(claims(lanes, 2), ['claim:b', 'claim:b'], 'woken b is claimed, a still idle')
  c.advance(200)
  t.same(lanes.next(1000), { organization: 'a', kind: 'claim', wakes: 0 })
  lanes.idle('a', 1000, 0)
  lanes.idle('b', 1000, 1)
  t.same(lanes.next(1000), { waitMs: 1000 }, 'both idle')
  lanes.wake()
  t.same(claims(lanes, 2).sort(), ['claim:a', 'claim:b'], 'a wake without organization wakes all')
})

t.test('an empty claim that raced with a wake does not put the organization to sleep', async (t) => {
  const lanes = new OrganizationLanes(PROBE, clock().now)
  lanes.setOrganizations(['a'])
  const turn = lanes.next(1000) as Extract<Turn, { kind: 'claim' }>
  lanes.wake('a') // events committed while the claim was looking
  lanes.idle('a', 1000, turn.wakes)
  t.match(lanes.next(1000), { organization: 'a', kind: 'claim' }, 'claimed again at once')
  const later = lanes.next(1000) as Extract<Turn, { kind: 'claim' }>
  lanes.idle('a', 1000, later.wakes)
  t.same(lanes.next(1000), { waitMs: 1000 }, 'without a wake in between, it idles')
})

t.test('a paused organization is skipped, probed once when its pause ends, and resumes alone', async (t) => {
  const c = clock()
  const lanes = new OrganizationLanes(PROBE, c.now, () => 0.5)
  lanes.setOrganizations(['a', 'b'])
  t.ok(lanes.pause('b', 'unauthorized', 'HTTP 401', null), 'a new pause is reported')
  t.notOk(lanes.pause('b', 'unauthorized', 'HTTP 401', null), 'the same reason again is not')
  t.ok(lanes.isPaused('b'))
  t.notOk(lanes.isPaused('a'))
  t.same(claims(lanes, 3), ['claim:a', 'claim:a', 'claim:a'], 'a keeps forwarding')
  t.match(lanes.state('b'), { status: 'unauthorized', last_error: 'HTTP 401', next_probe_at: String })
  t.match(lanes.state('a'), { status: 'running', next_probe_at: null })

  lanes.idle('a', 10_000, 0)
  const wait = lanes.next(10_000) as Extract<Turn, { waitMs: number }>
  t.ok(wait.waitMs > 0 && wait.waitMs <= lanes.pauseRemaining('b'), 'waits no longer than the pause')
  const pauseMs = lanes.pauseRemaining('b')
  c.advance(pauseMs)
  t.same(lanes.next(10_000), { organization: 'b', kind: 'probe' }, 'probe when the pause ends')
  t.same(lanes.next(10_000), { waitMs: 10_000 - pauseMs }, 'one probe at a time: no other worker probes b meanwhile (only a\'s idle time is waited on)')
  t.ok(lanes.resume('b'))
  t.match(lanes.next(10_000), { organization: 'b', kind: 'claim' }, 'b claims again after the probe succeeded')
  t.equal(lanes.state('b')?.status, 'running')
})

t.test('the pause grows with failed probes, honours Retry-After, and never goes below the base', async (t) => {
  const c = clock()
  const lanes = new OrganizationLanes(PROBE, c.now, () => 0.999)
  lanes.setOrganizations(['a'])
  lanes.pause('a', 'lago_unavailable', 'down', null)
  const first = lanes.pauseRemaining('a')
  lanes.pause('a', 'lago_unavailable', 'down', null)
  lanes.pause('a', 'lago_unavailable', 'down', null)
  const third = lanes.pauseRemaining('a')
  t.ok(first >= PROBE.baseMs && third > first && third <= PROBE.maxMs, `grows within the policy (${first} → ${third})`)
  lanes.pause('a', 'rate_limited', '429', 5000)
  t.equal(lanes.pauseRemaining('a'), 5000, 'Retry-After wins')
  t.equal(lanes.state('a')?.status, 'rate_limited')
})

t.test('organizations that are no longer active lose their lane; new ones get one', async (t) => {
  const lanes = new OrganizationLanes(PROBE, clock().now)
  lanes.setOrganizations(['a', 'b'])
  lanes.pause('b', 'unauthorized', '401', null)
  lanes.setOrganizations(['a', 'c'])
  t.equal(lanes.state('b'), null)
  t.same(lanes.organizations, ['a', 'c'])
  t.same(claims(lanes, 4).sort(), ['claim:a', 'claim:a', 'claim:c', 'claim:c'])
  lanes.setOrganizations(['a', 'b'])
  t.equal(lanes.state('b')?.status, 'running', 'b comes back without its old pause (a new key, say)')
})
