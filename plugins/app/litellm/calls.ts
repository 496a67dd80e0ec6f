import { hash } from 'node:crypto'
import type { UsageEventSource } from '../../../db/database.js'
import { cleanMetadata, METADATA_MAX_BYTES, NO_CUSTOMER, type UsageEvent } from '../usage-events/normalize.js'
import type { CallIdentity, CustomerResolution } from '../customer-mappings/identities.js'

/**
 * One LiteLLM call read from any of LiteLLM's output formats, before its customer is resolved: the usage event's
 * fields that the payload itself gives. requestId is the strongest key the format carries; litellmId is LiteLLM's
 * id of the call as its spend logs know it (see litellmCallKey).
 */
export interface LiteLLMCall extends Pick<UsageEvent, 'requestId' | 'litellmId' | 'litellmCallId' | 'matchWindowMs' | 'model' |
'provider' | 'tokensInput' | 'tokensOutput' | 'totalTokens' | 'costUsd' | 'apiKeyHash' | 'timestamp'> {
  identity: CallIdentity
  /** Set for a failed call: it is stored and never billed. */
  failure?: string
  /** Billing-relevant attributes worth keeping (never prompt or completion text). */
  attributes: Record<string, unknown>
  /** What was odd about the payload and how it was read (e.g. a null cost stored as 0). */
  notes: string[]
}

/** A payload read into a call, or why it cannot be. */
export type ReadResult = { call: LiteLLMCall } | { rejected: string }

/**
 * The metadata stored with a call. Identities, ids and notes always survive, since a later customer mapping
 * needs them; the other attributes are cleaned as sanitizeMetadata does (no content-like keys) and are dropped
 * when everything would not fit (one size check, of what is stored).
 */
export function callMetadata (call: LiteLLMCall, resolution: CustomerResolution): Record<string, unknown> {
  // Assigned onto the cleaned attributes rather than spread into copies: spreads are the slow path of object
  // creation, once per call. The core keys win over attributes of the same name (which keep their place, as with
  // the spread before).
  const setCore = (into: Record<string, unknown>): Record<string, unknown> => {
    if ('identities' in call.identity) into.identities = call.identity.identities
    else into.subject = call.identity.subject ?? null
    into.customer_from = 'customer' in resolution ? resolution.via : null
    if (call.litellmCallId !== undefined) into.litellm_call_id = call.litellmCallId
    if (call.notes.length > 0) into.notes = call.notes
    return into
  }
  const all = setCore(cleanMetadata(call.attributes))
  if (Buffer.byteLength(JSON.stringify(all)) <= METADATA_MAX_BYTES) return all
  return Object.assign(setCore({}), { attributes_dropped: 'too large' })
}

/**
 * The billing content of a call: what two deliveries of the same call agree on whatever the format (customer,
 * tokens, cost). Model names and times differ in form between LiteLLM's formats, so they are not part of it.
 */
export function callFingerprint (customer: string, call: Pick<LiteLLMCall, 'tokensInput' | 'tokensOutput' | 'totalTokens' | 'costUsd'>): string {
  return hash('sha256', JSON.stringify([customer, call.tokensInput, call.tokensOutput, call.totalTokens, call.costUsd]), 'hex')
}

/** The usage event stored for a call: pending, or held as not_billable (failed) or unmapped (no customer yet). */
export function toUsageEvent (call: LiteLLMCall, source: UsageEventSource, resolution: CustomerResolution): UsageEvent {
  const customer = 'customer' in resolution ? resolution.customer : NO_CUSTOMER
  const hold = call.failure !== undefined
    ? { kind: 'not_billable' as const, message: call.failure }
    : 'unmapped' in resolution ? { kind: 'unmapped' as const, message: resolution.unmapped } : undefined
  const event: UsageEvent = {
    requestId: call.requestId,
    customerExternalId: customer,
    model: call.model,
    provider: call.provider,
    eventType: 'usage',
    tokensInput: call.tokensInput,
    tokensOutput: call.tokensOutput,
    totalTokens: call.totalTokens,
    costUsd: call.costUsd,
    apiKeyHash: call.apiKeyHash,
    timestamp: call.timestamp,
    source,
    fingerprint: callFingerprint(customer, call),
    metadata: callMetadata(call, resolution)
  }
  // Set when present (absent otherwise), rather than spread: spreads are the slow path of object creation, per call.
  if (hold !== undefined) event.hold = hold
  if (call.litellmId !== undefined) event.litellmId = call.litellmId
  if (call.litellmCallId !== undefined) event.litellmCallId = call.litellmCallId
  if (call.matchWindowMs !== undefined) event.matchWindowMs = call.matchWindowMs
  return event
}
