import type { ReadResult } from './calls.js'
import { exactCost, isObject, isoTime, text, tokenCount, unstorableText } from './fields.js'

/** True for a CloudEvent (structured mode): it names its specversion. */
export const isCloudEvent = (body: unknown): boolean => isObject(body) && 'specversion' in body

/**
 * Reads one CloudEvent as LiteLLM's `openmeter` callback sends it: `subject` is the customer (the request user,
 * else the key's user id; old builds sent a list), `data` holds model, cost and, for chat and embeddings only, the
 * token counts; `time` is when the callback ran. The idempotency key is (source, id), as OpenMeter's own.
 * `id` is LiteLLM's response id (else its call id), the same id its spend logs key the call by.
 */
export function readCloudEvent (event: unknown, receivedAt: Date): ReadResult {
  if (!isObject(event)) return { rejected: 'not a CloudEvent object' }
  for (const key of ['id', 'source']) {
    const fault = unstorableText(event[key])
    if (fault !== undefined) return { rejected: `CloudEvent attribute ${key} ${fault}` }
  }
  const missing = ['specversion', 'id', 'source', 'type'].filter((k) => text(event[k], 1024) === undefined)
  if (missing.length > 0) return { rejected: `CloudEvent attribute${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing (required by CloudEvents 1.0)` }
  if (event.specversion !== '1.0') return { rejected: `unsupported CloudEvents specversion "${String(event.specversion)}" (1.0 expected)` }
  const id = text(event.id, 512) as string
  const source = text(event.source, 255) as string
  const data = isObject(event.data) ? event.data : {}
  const notes: string[] = []

  let subject = text(event.subject)
  if (subject === undefined && Array.isArray(event.subject)) {
    // LiteLLM builds before PR #12147 sent a tuple here (issue #7569).
    subject = event.subject.map((v) => text(v)).find((v) => v !== undefined)
    if (subject !== undefined) notes.push('subject was a list (old LiteLLM build): its first value read as the customer')
  }
  const time = isoTime(event.time)
  if (time === undefined) notes.push('no readable time: the time of receipt is used')
  const { cost, note } = exactCost(data.cost, 'cost')
  if (note !== undefined) notes.push(note)
  const tokensInput = tokenCount(data.prompt_tokens) ?? 0
  const tokensOutput = tokenCount(data.completion_tokens) ?? 0

  return {
    call: {
      requestId: `${source}:${id}`,
      litellmId: id,
      model: text(data.model) ?? 'unknown',
      provider: 'unknown',
      tokensInput,
      tokensOutput,
      totalTokens: tokenCount(data.total_tokens) ?? tokensInput + tokensOutput,
      costUsd: cost,
      apiKeyHash: null,
      timestamp: time ?? receivedAt,
      identity: { subject },
      attributes: { litellm_id: id, cloudevent_source: source, cloudevent_type: text(event.type, 255) },
      notes
    }
  }
}
