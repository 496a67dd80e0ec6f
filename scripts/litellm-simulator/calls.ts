import { createHash, randomUUID } from 'node:crypto'

/** One proxied LLM call, from which the simulator derives what LiteLLM would push and what it would store. */
export interface CallSpec {
  /** The request's `user` (LiteLLM's end user). */
  endUser?: string
  team?: string
  user?: string
  org?: string
  keyAlias?: string
  /** The virtual key; its sha256 is what LiteLLM reports. Default: a key per team/alias. */
  key?: string
  model?: string
  modelGroup?: string
  provider?: string
  promptTokens?: number
  completionTokens?: number
  /** USD as LiteLLM computed it (a float); null when the model is not priced. */
  cost?: number | null
  /** Call start, epoch microseconds (LiteLLM's clock has microseconds; its spend-log table keeps milliseconds). */
  startMicros?: number
  durationMs?: number
  /** A cache hit of an earlier call: same response id, cost 0. */
  cacheHitOf?: SimulatedCall
  failure?: { errorClass: string, errorCode: string }
  tags?: string[]
}

/** A call as LiteLLM knows it. */
export interface SimulatedCall {
  callId: string
  responseId: string
  spec: Required<Pick<CallSpec, 'model' | 'provider' | 'promptTokens' | 'completionTokens'>> & CallSpec
  startMicros: number
  endMicros: number
  cost: number | null
  cacheHit: boolean
  /** time.time() when the StandardLoggingPayload was built, and when the spend-log row was: two clock readings. */
  payloadClock: number
  spendLogClock: number
}

const keyHash = (key: string): string => createHash('sha256').update(key).digest('hex')

let sequence = 0

export function simulateCall (spec: CallSpec): SimulatedCall {
  sequence++
  const startMicros = spec.startMicros ?? Date.now() * 1000 - 60_000_000
  const endMicros = startMicros + (spec.durationMs ?? 1864) * 1000 + 198
  const cacheHit = spec.cacheHitOf !== undefined
  const logged = endMicros / 1e6
  return {
    callId: randomUUID(),
    // Provider ids are unique per response; a cache hit returns the cached response, id included.
    responseId: spec.cacheHitOf?.responseId ?? `chatcmpl-${randomUUID().replaceAll('-', '').slice(0, 29)}`,
    spec: { model: 'gpt-4o-mini', provider: 'openai', promptTokens: 412, completionTokens: 202, ...spec },
    startMicros,
    endMicros,
    cost: cacheHit || spec.failure !== undefined ? 0 : spec.cost === undefined ? 0.000183 : spec.cost,
    cacheHit,
    payloadClock: logged + 0.000_412 + sequence * 1e-6,
    spendLogClock: logged + 0.003_917 + sequence * 1e-6
  }
}

const tokensOf = (c: SimulatedCall): { prompt: number, completion: number } =>
  c.spec.failure !== undefined ? { prompt: 0, completion: 0 } : { prompt: c.spec.promptTokens, completion: c.spec.completionTokens }

const keyOf = (c: SimulatedCall): string | undefined => c.spec.key ?? (c.spec.team !== undefined || c.spec.keyAlias !== undefined ? `sk-${c.spec.team ?? ''}-${c.spec.keyAlias ?? ''}` : undefined)

/** The StandardLoggingPayload LiteLLM builds for the call (what generic_api pushes), with message content. */
export function standardLoggingPayload (c: SimulatedCall): Record<string, unknown> {
  const { prompt, completion } = tokensOf(c)
  const key = keyOf(c)
  const failed = c.spec.failure !== undefined
  return {
    id: c.cacheHit ? `${c.responseId}_cache_hit${c.payloadClock}` : c.responseId,
    litellm_call_id: c.callId,
    trace_id: randomUUID(),
    call_type: 'acompletion',
    stream: null,
    status: failed ? 'failure' : 'success',
    status_fields: { llm_api_status: failed ? 'failure' : 'success', guardrail_status: 'not_run' },
    custom_llm_provider: c.spec.provider,
    response_cost: c.cost,
    cost_breakdown: c.cost === null ? null : { input_cost: 0, output_cost: c.cost, total_cost: c.cost, tool_usage_cost: 0 },
    saved_cache_cost: c.cacheHit ? 0.000183 : 0,
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    startTime: c.startMicros / 1e6,
    endTime: c.endMicros / 1e6,
    completionStartTime: c.endMicros / 1e6,
    response_time: (c.endMicros - c.startMicros) / 1e6,
    model: c.spec.model,
    model_group: c.spec.modelGroup ?? c.spec.model,
    model_id: 'b6c1f0e2d9a84c1e9f3a7d5b2c4e6a8f',
    api_base: 'https://api.openai.com/v1',
    cache_hit: c.cacheHit ? true : null,
    cache_key: c.cacheHit ? 'cache-key-1' : null,
    request_tags: [...(c.spec.tags ?? []), 'User-Agent: OpenAI', 'User-Agent: OpenAI/Python 1.54.4'],
    end_user: c.spec.endUser ?? '',
    requester_ip_address: '10.0.3.17',
    user_agent: 'OpenAI/Python 1.54.4',
    metadata: {
      user_api_key_hash: key !== undefined ? keyHash(key) : null,
      user_api_key_alias: c.spec.keyAlias ?? null,
      user_api_key_user_id: c.spec.user ?? null,
      user_api_key_user_email: c.spec.user !== undefined ? `${c.spec.user}@example.com` : null,
      user_api_key_team_id: c.spec.team ?? null,
      user_api_key_team_alias: c.spec.team !== undefined ? c.spec.team.toUpperCase() : null,
      user_api_key_org_id: c.spec.org ?? null,
      user_api_key_end_user_id: c.spec.endUser ?? null,
      user_api_key_spend: 12.34,
      user_api_key_max_budget: 100.0,
      spend_logs_metadata: null,
      requester_metadata: { tags: c.spec.tags ?? [], note: 'PROMPT-IN-REQUESTER-METADATA' },
      applied_guardrails: [],
      usage_object: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } }
    },
    hidden_params: { model_id: 'b6c1f0e2d9a84c1e9f3a7d5b2c4e6a8f', response_cost: c.cost, litellm_model_name: c.spec.model, additional_headers: { 'x-secret-header': 'HIDDEN-PARAM-SECRET' } },
    model_map_information: { model_map_key: c.spec.model, model_map_value: { input_cost_per_token: 1.5e-7, output_cost_per_token: 6e-7 } },
    messages: [{ role: 'system', content: 'SYSTEM-PROMPT-SECRET' }, { role: 'user', content: 'USER-PROMPT-SECRET' }],
    response: failed
      ? null
      : { id: c.responseId, object: 'chat.completion', model: `${c.spec.model}-2024-07-18`, choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'COMPLETION-SECRET' } }], usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion } },
    model_parameters: { temperature: 0.2, max_tokens: 512 },
    error_str: failed ? 'litellm.RateLimitError: rate limited for prompt USER-PROMPT-SECRET' : null,
    error_information: failed
      ? { error_code: c.spec.failure?.errorCode, error_class: c.spec.failure?.errorClass, llm_provider: c.spec.provider, traceback: 'Traceback ... USER-PROMPT-SECRET', error_message: 'rate limited' }
      : { error_code: '', error_class: '', llm_provider: '', traceback: '', error_message: '' }
  }
}

/** Python's datetime.isoformat() of a UTC time with the given microseconds (no fraction when it is zero). */
export function pythonIsoformat (micros: number): string {
  const ms = Math.floor(micros / 1000)
  const base = new Date(ms).toISOString().slice(0, 19)
  const fraction = micros % 1_000_000
  return `${base}${fraction === 0 ? '' : `.${String(fraction).padStart(6, '0')}`}+00:00`
}

/** Microseconds as PostgreSQL's timestamp(3) column keeps them (rounded to the millisecond). */
const toMillisecondColumn = (micros: number): number => Math.round(micros / 1000) * 1000

/** The LiteLLM_SpendLogs row of the call, as GET /spend/logs returns it. */
export function spendLogRow (c: SimulatedCall): Record<string, unknown> {
  const { prompt, completion } = tokensOf(c)
  const key = keyOf(c)
  const failed = c.spec.failure !== undefined
  return {
    request_id: c.cacheHit ? `${c.responseId}_cache_hit${c.spendLogClock}` : c.responseId,
    call_type: 'acompletion',
    api_key: key !== undefined ? keyHash(key) : '',
    spend: c.cost ?? 0,
    total_tokens: prompt + completion,
    prompt_tokens: prompt,
    completion_tokens: completion,
    startTime: pythonIsoformat(toMillisecondColumn(c.startMicros)),
    endTime: pythonIsoformat(toMillisecondColumn(c.endMicros)),
    completionStartTime: pythonIsoformat(toMillisecondColumn(c.endMicros)),
    model: c.spec.model,
    model_id: 'b6c1f0e2d9a84c1e9f3a7d5b2c4e6a8f',
    model_group: c.spec.modelGroup ?? c.spec.model,
    custom_llm_provider: c.spec.provider,
    api_base: 'https://api.openai.com/v1',
    user: c.spec.user ?? '',
    metadata: {
      user_api_key: key !== undefined ? keyHash(key) : null,
      user_api_key_alias: c.spec.keyAlias ?? null,
      user_api_key_team_id: c.spec.team ?? null,
      user_api_key_org_id: c.spec.org ?? null,
      user_api_key_user_id: c.spec.user ?? null,
      user_api_key_team_alias: c.spec.team !== undefined ? c.spec.team.toUpperCase() : null,
      spend_logs_metadata: null,
      requester_ip_address: '10.0.3.17',
      status: failed ? 'failure' : 'success',
      ...(failed ? { error_information: { error_code: c.spec.failure?.errorCode, error_class: c.spec.failure?.errorClass } } : {}),
      usage_object: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
    },
    cache_hit: c.cacheHit ? 'True' : 'False',
    cache_key: c.cacheHit ? 'cache-key-1' : 'Cache OFF',
    request_tags: [...(c.spec.tags ?? []), 'User-Agent: OpenAI'],
    team_id: c.spec.team ?? '',
    organization_id: c.spec.org ?? '',
    end_user: c.spec.endUser ?? '',
    requester_ip_address: '10.0.3.17',
    messages: '{}',
    response: '{}',
    proxy_server_request: '{}',
    session_id: randomUUID(),
    status: failed ? 'failure' : 'success'
  }
}
