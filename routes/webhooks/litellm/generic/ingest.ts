import type { GenericResponseBody } from '../../../../schemas/litellm.js'
import { readStandardLoggingPayload, type LiteLLMCall, type StoreCalls } from '../../../../plugins/app/litellm/index.js'

/** The calls read from one generic_api delivery, with the account so far of the items that are not calls. */
export interface ReadDelivery {
  result: GenericResponseBody
  calls: Array<{ index: number, call: LiteLLMCall }>
}

/**
 * Reads the items of one generic_api delivery: null elements (LiteLLM enqueues a missing payload as null) are
 * skipped, items that are not payloads rejected, the rest read into calls. Synchronous, and it keeps nothing of
 * the items but what each call needs: the caller can let go of the parsed batch before the write.
 */
export function readStandardPayloads (items: unknown[], receivedAt: Date): ReadDelivery {
  const result: GenericResponseBody = { received: items.length, accepted: 0, duplicate: 0, conflict: 0, rejected: 0, skipped: 0, not_billable: 0, unmapped: 0, problems: [] }
  const calls: ReadDelivery['calls'] = []
  for (const [index, item] of items.entries()) {
    if (item === null) {
      result.skipped++
      continue
    }
    const read = readStandardLoggingPayload(item, receivedAt)
    if ('call' in read) {
      calls.push({ index, call: read.call })
    } else {
      result.rejected++
      result.problems.push({ index, status: 'rejected', message: read.rejected })
    }
  }
  return { result, calls }
}

/** Stores the calls of a delivery read by readStandardPayloads and accounts for each: stored or recognised as known. */
export async function storeStandardPayloads ({ result, calls }: ReadDelivery, store: StoreCalls): Promise<GenericResponseBody> {
  const outcomes = await store(calls.map((c) => c.call), 'generic_api')
  for (const [i, { index, call }] of calls.entries()) {
    const outcome = outcomes[i]
    const { status, held } = outcome
    result[status]++
    if (outcome.status === 'rejected') {
      result.problems.push({ index, status: 'rejected', request_id: call.requestId, message: `${outcome.field} ${outcome.message}` })
    } else if (status === 'conflict') {
      result.problems.push({ index, status, request_id: call.requestId, message: 'this call is already stored with different tokens or cost: the stored one is kept' })
    } else if (status === 'accepted' && held !== undefined) {
      result[held]++
    }
  }
  result.problems.sort((a, b) => a.index - b.index)
  return result
}
