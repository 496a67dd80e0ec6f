import t from 'tap'
import type { SubscriptionObject } from '../../../../plugins/app/lago/types.js'
import { currentSubscription, toPageMeta } from '../../../../plugins/app/billing/mapping.js'

const sub = (externalId: string, status: SubscriptionObject['status']) => ({ external_id: externalId, status }) as SubscriptionObject

t.test('the subscription shown: the one usage goes to, active before pending, none when all ended', async (t) => {
  t.equal(currentSubscription([sub('a', 'active'), sub('b', 'active')], 'b')?.external_id, 'b', 'the known one first')
  t.equal(currentSubscription([sub('a', 'pending'), sub('b', 'active')], 'a')?.external_id, 'b', 'an active one before a pending one')
  t.equal(currentSubscription([sub('a', 'pending')], null)?.external_id, 'a', 'a pending one when nothing is active')
  t.equal(currentSubscription([sub('a', 'terminated'), sub('b', 'canceled')], 'a'), null)
  t.equal(currentSubscription([], null), null)
})

t.test('page meta: the page asked for, Lago\'s counts, nulls at the ends', async (t) => {
  t.same(toPageMeta({ current_page: 0, total_pages: 0, total_count: 0, next_page: null, prev_page: null }, 1, 20),
    { page: 1, per_page: 20, total_count: 0, total_pages: 0, next_page: null, prev_page: null })
  t.same(toPageMeta({ current_page: 2, total_pages: 3, total_count: 5, next_page: 3, prev_page: 1 }, 2, 2),
    { page: 2, per_page: 2, total_count: 5, total_pages: 3, next_page: 3, prev_page: 1 })
  t.same(toPageMeta(undefined, 1, 10), { page: 1, per_page: 10, total_count: 0, total_pages: 0, next_page: null, prev_page: null })
})
