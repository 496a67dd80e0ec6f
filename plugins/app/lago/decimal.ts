/**
 * Exact decimal arithmetic for money and usage units: a BigInt of digits and a count of places after the point.
 * Addition, subtraction and multiplication never round, whatever the size; rounding happens only when asked
 * for, with an explicit mode. Billing needs no general division (percentages divide by 100, packages divide
 * by an integer and round up), so there is no precision setting to get wrong.
 */
export type RoundingMode = 'half_up' | 'ceil' | 'floor'

const DECIMAL_TEXT = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$/

const pow10 = (n: number): bigint => 10n ** BigInt(n)

export class Decimal {
  static readonly ZERO = new Decimal(0n, 0)
  static readonly ONE = new Decimal(1n, 0)

  /** value = digits / 10^scale, scale >= 0 */
  private constructor (readonly digits: bigint, readonly scale: number) {}

  /** Reads a decimal string ("0.00375", "-12", "1e-7"), a safe integer or a finite number; null when it is not one. */
  static parse (value: unknown): Decimal | null {
    if (value instanceof Decimal) return value
    if (typeof value === 'bigint') return new Decimal(value, 0)
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return null
      // String(n) is the shortest text that round-trips the double: 0.1 reads as exactly 0.1.
      value = String(value)
    }
    if (typeof value !== 'string') return null
    const match = DECIMAL_TEXT.exec(value.trim())
    if (match === null) return null
    const [, sign, int = '', frac = '', exp = '0'] = match
    if (int === '' && frac === '') return null
    let digits = BigInt(int + frac || '0')
    let scale = frac.length - Number(exp)
    if (scale < 0) {
      digits *= pow10(-scale)
      scale = 0
    }
    return new Decimal(sign === '-' ? -digits : digits, scale).trimmed()
  }

  /** Like parse, but throws a RangeError naming the bad value. */
  static from (value: unknown): Decimal {
    const d = Decimal.parse(value)
    if (d === null) throw new RangeError(`not a decimal number: ${JSON.stringify(value) ?? String(value)}`)
    return d
  }

  static sum (values: Iterable<Decimal>): Decimal {
    let total = Decimal.ZERO
    for (const v of values) total = total.plus(v)
    return total
  }

  private static aligned (a: Decimal, b: Decimal): [bigint, bigint, number] {
    const scale = Math.max(a.scale, b.scale)
    return [a.digits * pow10(scale - a.scale), b.digits * pow10(scale - b.scale), scale]
  }

  private trimmed (): Decimal {
    let { digits, scale } = this
    while (scale > 0 && digits % 10n === 0n) {
      digits /= 10n
      scale--
    }
    // Compare the scale, not the digits: zero keeps its digits (0n) while losing its places ("0.0" → "0").
    return scale === this.scale ? this : new Decimal(digits, scale)
  }

  plus (other: Decimal | string | number): Decimal {
    const [a, b, scale] = Decimal.aligned(this, Decimal.from(other))
    return new Decimal(a + b, scale).trimmed()
  }

  minus (other: Decimal | string | number): Decimal {
    const [a, b, scale] = Decimal.aligned(this, Decimal.from(other))
    return new Decimal(a - b, scale).trimmed()
  }

  times (other: Decimal | string | number): Decimal {
    const o = Decimal.from(other)
    return new Decimal(this.digits * o.digits, this.scale + o.scale).trimmed()
  }

  /** Multiplies by 10^places (negative places divide), exactly: shift(2) turns dollars into cents. */
  shift (places: number): Decimal {
    if (places >= 0) return new Decimal(this.digits * pow10(places), this.scale).trimmed()
    return new Decimal(this.digits, this.scale - places).trimmed()
  }

  /** Rounds to a number of places after the point. */
  round (places: number, mode: RoundingMode = 'half_up'): Decimal {
    if (this.scale <= places) return this
    const divisor = pow10(this.scale - places)
    const quotient = this.digits / divisor // truncates toward zero
    const remainder = this.digits % divisor
    if (remainder === 0n) return new Decimal(quotient, places).trimmed()
    const negative = this.digits < 0n
    let q = quotient
    if (mode === 'ceil' && !negative) q += 1n
    else if (mode === 'floor' && negative) q -= 1n
    else if (mode === 'half_up' && (remainder < 0n ? -remainder : remainder) * 2n >= divisor) q += negative ? -1n : 1n
    return new Decimal(q, places).trimmed()
  }

  /** this ÷ divisor rounded to `places` after the point: for display values (unit prices), never for totals. */
  dividedBy (divisor: Decimal | string | number, places: number, mode: RoundingMode = 'half_up'): Decimal {
    const d = Decimal.from(divisor)
    if (d.isZero()) throw new RangeError('division by zero')
    // (a / 10^sa) / (b / 10^sb) = a·10^(sb+places) / (b·10^sa), scaled by 10^places.
    let numerator = this.digits * pow10(d.scale + places)
    let denominator = d.digits * pow10(this.scale)
    if (denominator < 0n) {
      numerator = -numerator
      denominator = -denominator
    }
    const quotient = new Decimal(numerator / denominator, places)
    const remainder = numerator % denominator
    if (remainder === 0n) return quotient.trimmed()
    // Round through the exact value with one extra digit of room, then apply the mode.
    const sign = numerator < 0n ? -1n : 1n
    const twice = (remainder < 0n ? -remainder : remainder) * 2n
    let q = quotient.digits
    if (mode === 'ceil' && sign > 0n) q += 1n
    else if (mode === 'floor' && sign < 0n) q -= 1n
    else if (mode === 'half_up' && twice >= denominator) q += sign
    return new Decimal(q, places).trimmed()
  }

  /** Divides by a positive integer and rounds the quotient up to an integer (package counts). */
  ceilDiv (divisor: bigint | number): Decimal {
    const d = BigInt(divisor)
    if (d <= 0n) throw new RangeError('divisor must be a positive integer')
    const scaled = d * pow10(this.scale)
    let q = this.digits / scaled
    if (this.digits % scaled !== 0n && this.digits > 0n) q += 1n
    return new Decimal(q, 0)
  }

  cmp (other: Decimal | string | number): -1 | 0 | 1 {
    const [a, b] = Decimal.aligned(this, Decimal.from(other))
    return a < b ? -1 : a > b ? 1 : 0
  }

  lt (other: Decimal | string | number): boolean { return this.cmp(other) < 0 }
  lte (other: Decimal | string | number): boolean { return this.cmp(other) <= 0 }
  gt (other: Decimal | string | number): boolean { return this.cmp(other) > 0 }
  gte (other: Decimal | string | number): boolean { return this.cmp(other) >= 0 }
  eq (other: Decimal | string | number): boolean { return this.cmp(other) === 0 }
  isZero (): boolean { return this.digits === 0n }
  isNegative (): boolean { return this.digits < 0n }
  isInteger (): boolean { return this.scale === 0 }

  static max (a: Decimal, b: Decimal): Decimal { return a.gte(b) ? a : b }
  static min (a: Decimal, b: Decimal): Decimal { return a.lte(b) ? a : b }

  /** Canonical plain text: no exponent, no trailing zeros after the point ("0.00375", "12", "-0.5"). */
  toString (): string {
    const negative = this.digits < 0n
    const text = (negative ? -this.digits : this.digits).toString()
    if (this.scale === 0) return (negative ? '-' : '') + text
    const padded = text.padStart(this.scale + 1, '0')
    const cut = padded.length - this.scale
    return `${negative ? '-' : ''}${padded.slice(0, cut)}.${padded.slice(cut)}`
  }

  /** Text with at least `minPlaces` places after the point, as Lago prints units ("10.0"). */
  toFixedMin (minPlaces: number): string {
    const text = this.toString()
    const places = text.includes('.') ? text.length - text.indexOf('.') - 1 : 0
    if (places >= minPlaces) return text
    return (places === 0 ? `${text}.` : text) + '0'.repeat(minPlaces - places)
  }

  /** The value as a JS number: only for integers known to be safe (cents counts); throws otherwise. */
  toSafeInteger (): number {
    if (this.scale !== 0) throw new RangeError(`${this.toString()} is not an integer`)
    const n = Number(this.digits)
    if (!Number.isSafeInteger(n)) throw new RangeError(`${this.toString()} exceeds the safe integer range`)
    return n
  }

  toJSON (): string { return this.toString() }
}
