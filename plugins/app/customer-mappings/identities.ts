import type { IdentityKind } from '../../../db/database.js'

export type { IdentityKind }

export const IDENTITY_KINDS: readonly IdentityKind[] = ['end_user', 'user', 'team', 'org', 'key_alias', 'key_hash']

/** The LiteLLM identities a call carries. */
export type Identities = Partial<Record<IdentityKind, string>>

/**
 * Who may pay for a call: its identities (StandardLoggingPayload, spend logs), or one subject whose kind the
 * format does not say (the Lago callback sends the identity LiteLLM's LAGO_API_CHARGE_BY picked; OpenMeter the
 * request user or the key's user).
 */
export type CallIdentity = { identities: Identities } | { subject: string | undefined }

export interface CustomerPolicy {
  /** Identity kinds tried in order (LITELLM_CUSTOMER_FIELDS, or an organization's customer_fields). */
  fields: IdentityKind[]
  /** Where `fields` come from, for the reasons a call waits (default: LITELLM_CUSTOMER_FIELDS). */
  fieldsFrom?: string
  /** The kinds a subject of unknown kind is looked up under: `fields`, then every other kind. */
  subjectOrder: readonly IdentityKind[]
  /** Customer of calls no identity resolves (LITELLM_DEFAULT_CUSTOMER). */
  defaultCustomer?: string
  /** Only identities with an explicit mapping bill (LITELLM_MAPPED_CUSTOMERS_ONLY). */
  mappedOnly: boolean
}

export function customerPolicy (config: { LITELLM_CUSTOMER_FIELDS: IdentityKind[], LITELLM_DEFAULT_CUSTOMER?: string, LITELLM_MAPPED_CUSTOMERS_ONLY: boolean }, fieldsFrom?: string): CustomerPolicy {
  const fields = config.LITELLM_CUSTOMER_FIELDS
  return {
    fields,
    ...(fieldsFrom !== undefined ? { fieldsFrom } : {}),
    subjectOrder: [...fields, ...IDENTITY_KINDS.filter((k) => !fields.includes(k))],
    defaultCustomer: config.LITELLM_DEFAULT_CUSTOMER,
    mappedOnly: config.LITELLM_MAPPED_CUSTOMERS_ONLY
  }
}

/** The explicit mapping of one identity, if any. */
export type MappingLookup = (kind: IdentityKind, value: string) => string | undefined

/** The Lago customer of a call and how it was found (e.g. "team", "mapping:key_alias", "default"), or why there is none. */
export type CustomerResolution = { customer: string, via: string } | { unmapped: string }

/**
 * Picks the billed customer: the first identity in the configured order that is present decides, through its
 * explicit mapping if it has one, else (unless only mapped identities bill) as the customer id itself. A subject
 * of unknown kind is looked up under every kind in the configured order. Nothing found: the default customer,
 * else unmapped with the reason.
 */
export function resolveCustomer (identity: CallIdentity, policy: CustomerPolicy, lookup: MappingLookup): CustomerResolution {
  const present: string[] = []
  if ('subject' in identity) {
    const subject = identity.subject
    if (subject !== undefined) {
      for (const kind of policy.subjectOrder) {
        const mapped = lookup(kind, subject)
        if (mapped !== undefined) return { customer: mapped, via: `mapping:${kind}` }
      }
      if (!policy.mappedOnly) return { customer: subject, via: 'subject' }
      present.push(`subject "${subject}"`)
    }
  } else {
    for (const kind of policy.fields) {
      const value = identity.identities[kind]
      if (value === undefined) continue
      const mapped = lookup(kind, value)
      if (mapped !== undefined) return { customer: mapped, via: `mapping:${kind}` }
      if (!policy.mappedOnly) return { customer: value, via: kind }
      present.push(`${kind} "${value}"`)
    }
  }
  if (policy.defaultCustomer !== undefined) return { customer: policy.defaultCustomer, via: 'default' }
  if (present.length > 0) {
    return { unmapped: `no customer mapping for ${present.join(', ')} (LITELLM_MAPPED_CUSTOMERS_ONLY=true) and no LITELLM_DEFAULT_CUSTOMER: add a mapping (POST /api/customer-mappings)` }
  }
  const carried = 'identities' in identity ? Object.keys(identity.identities) : []
  return {
    unmapped: carried.length > 0
      ? `the call carries only ${carried.join(', ')}, none of ${policy.fieldsFrom ?? 'LITELLM_CUSTOMER_FIELDS'} (${policy.fields.join(', ')}), and there is no LITELLM_DEFAULT_CUSTOMER`
      : 'the call carries no LiteLLM identity (no end user, user, team, org or virtual key) and there is no LITELLM_DEFAULT_CUSTOMER: add a mapping or set a default customer'
  }
}
