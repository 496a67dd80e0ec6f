/** An error answer in Lago's own shapes (app/controllers/concerns/api_errors.rb), thrown by the state. */
export class LagoFailure extends Error {
  constructor (readonly status: number, readonly body: Record<string, unknown>) {
    super(`${status} ${String(body.code ?? body.error)}`)
    this.name = 'LagoFailure'
  }
}

export type FieldErrors = Record<string, string[]>

/** 422 validation_errors; error_details is field → codes, or index → field → codes for event batches. */
export const validationFailure = (details: FieldErrors | Record<string, FieldErrors>): LagoFailure =>
  new LagoFailure(422, { status: 422, error: 'Unprocessable Entity', code: 'validation_errors', error_details: details })

/** 404 with Lago's `<resource>_not_found` code. */
export const notFound = (resource: string): LagoFailure =>
  new LagoFailure(404, { status: 404, error: 'Not Found', code: `${resource}_not_found` })

/** 405 for state conflicts, e.g. no_active_subscription. */
export const notAllowed = (code: string): LagoFailure =>
  new LagoFailure(405, { status: 405, error: 'Method Not Allowed', code })

/** 400 as Rails answers a missing root key (ActionController::ParameterMissing). */
export const missingParam = (name: string): LagoFailure =>
  new LagoFailure(400, { status: 400, error: `BadRequest: param is missing or the value is empty: ${name}` })

export const UNAUTHORIZED_BODY = { status: 401, error: 'Unauthorized' } as const

/** Collects field errors the way Lago's validators do, several codes per field. */
export class Errors {
  readonly fields: FieldErrors = {}
  add (field: string, code: string): void {
    const codes = (this.fields[field] ??= [])
    if (!codes.includes(code)) codes.push(code)
  }

  get empty (): boolean { return Object.keys(this.fields).length === 0 }
  throwIfAny (): void {
    if (!this.empty) throw validationFailure(this.fields)
  }
}
