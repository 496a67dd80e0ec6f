import t from 'tap'
import { customerPolicy, resolveCustomer, type MappingLookup } from '../../../../plugins/app/customer-mappings/identities.js'
import { loadConfig } from '../../../../plugins/external/config.js'

const none: MappingLookup = () => undefined
const mapped = (entries: Record<string, string>): MappingLookup => (kind, value) => entries[`${kind}:${value}`]
const policy = (env: Partial<{ LITELLM_CUSTOMER_FIELDS: string, LITELLM_DEFAULT_CUSTOMER: string, LITELLM_MAPPED_CUSTOMERS_ONLY: boolean }> = {}) =>
  customerPolicy({ LITELLM_MAPPED_CUSTOMERS_ONLY: false, ...env, LITELLM_CUSTOMER_FIELDS: loadConfig({ LITELLM_CUSTOMER_FIELDS: env.LITELLM_CUSTOMER_FIELDS }).LITELLM_CUSTOMER_FIELDS })

const call = { identities: { end_user: 'cust_1', team: 'team_acme', user: 'u_1', key_alias: 'acme-prod', key_hash: 'h' } }

t.test('the first configured identity present decides; its mapping wins over its own value', async (t) => {
  t.same(resolveCustomer(call, policy(), none), { customer: 'cust_1', via: 'end_user' })
  t.same(resolveCustomer({ identities: { team: 'team_acme', key_hash: 'h' } }, policy(), none), { customer: 'team_acme', via: 'team' }, 'falls back in order')
  t.same(resolveCustomer(call, policy({ LITELLM_CUSTOMER_FIELDS: 'team, end_user' }), none), { customer: 'team_acme', via: 'team' })
  t.same(resolveCustomer(call, policy({ LITELLM_CUSTOMER_FIELDS: 'team' }), mapped({ 'team:team_acme': 'acme' })), { customer: 'acme', via: 'mapping:team' })
  t.same(resolveCustomer(call, policy(), mapped({ 'team:team_acme': 'acme' })), { customer: 'cust_1', via: 'end_user' }, 'a later identity\'s mapping does not jump the order')
})

t.test('only mapped identities bill when asked; then the default customer; then unmapped with the reason', async (t) => {
  const only = policy({ LITELLM_MAPPED_CUSTOMERS_ONLY: true })
  t.same(resolveCustomer(call, only, mapped({ 'key_alias:acme-prod': 'acme' })), { customer: 'acme', via: 'mapping:key_alias' }, 'the first mapped identity in order')
  t.match(resolveCustomer(call, only, none), { unmapped: /no customer mapping for end_user "cust_1", team "team_acme".*LITELLM_MAPPED_CUSTOMERS_ONLY/ })
  t.same(resolveCustomer(call, { ...only, defaultCustomer: 'house' }, none), { customer: 'house', via: 'default' })
  t.match(resolveCustomer({ identities: {} }, policy(), none), { unmapped: /carries no LiteLLM identity/ })
  t.match(resolveCustomer({ identities: { org: 'o' } }, policy(), none), { unmapped: /carries only org, none of LITELLM_CUSTOMER_FIELDS/ })
  const own = customerPolicy({ LITELLM_CUSTOMER_FIELDS: ['team'], LITELLM_MAPPED_CUSTOMERS_ONLY: false }, 'organization acme\'s customer_fields')
  t.same(resolveCustomer({ identities: { org: 'o' } }, own, none), { unmapped: 'the call carries only org, none of organization acme\'s customer_fields (team), and there is no LITELLM_DEFAULT_CUSTOMER' }, 'an organization\'s own order is named as such')
  t.same(resolveCustomer({ identities: {} }, policy({ LITELLM_DEFAULT_CUSTOMER: 'house' }), none), { customer: 'house', via: 'default' })
})

t.test('a subject of unknown kind (Lago, OpenMeter) is looked up under every kind, else is the customer', async (t) => {
  t.same(resolveCustomer({ subject: 'team_acme' }, policy(), none), { customer: 'team_acme', via: 'subject' })
  t.same(resolveCustomer({ subject: 'team_acme' }, policy(), mapped({ 'team:team_acme': 'acme' })), { customer: 'acme', via: 'mapping:team' })
  t.same(resolveCustomer({ subject: 'o1' }, policy(), mapped({ 'org:o1': 'org-customer' })), { customer: 'org-customer', via: 'mapping:org' }, 'kinds outside the fields are tried last')
  t.match(resolveCustomer({ subject: undefined }, policy(), none), { unmapped: /no LiteLLM identity/ })
  t.match(resolveCustomer({ subject: 'x' }, policy({ LITELLM_MAPPED_CUSTOMERS_ONLY: true }), none), { unmapped: /subject "x"/ })
})
