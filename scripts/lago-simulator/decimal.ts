import BigImport from 'big.js'
import type { Big as BigNumber } from 'big.js'

/**
 * The simulator's decimal arithmetic, on big.js: a maintained library independent of the service's own decimal
 * code, so that a bug there is not agreed on by the simulator standing in for Lago. Same small surface as the
 * service's Decimal (exact +, -, ×; rounding only when asked for).
 */
export type RoundingMode = 'half_up' | 'ceil' | 'floor'

// A private constructor: settings (exponent thresholds) do not leak to other users of big.js.
const Big = BigImport()
Big.NE = -1e6
Big.PE = 1e6

const ROUND_DOWN = 0
const ROUND_HALF_UP = 1
const ROUND_UP = 3

type Operand = Decimal | string | number

export class Decimal {
  static readonly ZERO = new Decimal(new Big(0))
  static readonly ONE = new Decimal(new Big(1))

  private constructor (private readonly big: BigNumber) {}

  /** Reads a decimal string ("0.00375", "-12", "1e-7"), a bigint or a finite number; null when it is not one. */
  static parse (value: unknown): Decimal | null {
    if (value instanceof Decimal) return value
    if (typeof value === 'bigint') return new Decimal(new Big(value.toString()))
    if (typeof value === 'number' && !Number.isFinite(value)) return null
    if (typeof value !== 'number' && typeof value !== 'string') return null
    try {
      return new Decimal(new Big(typeof value === 'number' ? String(value) : value.trim()))
    } catch {
      return null
    }
  }

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

  static max (a: Decimal, b: Decimal): Decimal { return a.gte(b) ? a : b }
  static min (a: Decimal, b: Decimal): Decimal { return a.lte(b) ? a : b }

  plus (other: Operand): Decimal { return new Decimal(this.big.plus(Decimal.from(other).big)) }
  minus (other: Operand): Decimal { return new Decimal(this.big.minus(Decimal.from(other).big)) }
  times (other: Operand): Decimal { return new Decimal(this.big.times(Decimal.from(other).big)) }

  /** Multiplies by 10^places (negative places divide), exactly. */
  shift (places: number): Decimal {
    return new Decimal(places >= 0 ? this.big.times(new Big(10).pow(places)) : this.big.div(new Big(10).pow(-places)))
  }

  round (places: number, mode: RoundingMode = 'half_up'): Decimal {
    const negative = this.big.lt(0)
    const rm = mode === 'half_up' ? ROUND_HALF_UP : (mode === 'ceil') !== negative ? ROUND_UP : ROUND_DOWN
    return new Decimal(this.big.round(places, rm))
  }

  /** this ÷ divisor rounded to `places` after the point. */
  dividedBy (divisor: Operand, places: number, mode: RoundingMode = 'half_up'): Decimal {
    const d = Decimal.from(divisor)
    if (d.isZero()) throw new RangeError('division by zero')
    // big.js divides to Big.DP places (half-up); exact enough here with room to spare, then the asked rounding.
    const Wide = BigImport()
    Wide.DP = places + 40
    return new Decimal(new Wide(this.big.toFixed()).div(d.big.toFixed())).round(places, mode)
  }

  /** Divides by a positive integer and rounds the quotient up to an integer (package counts). */
  ceilDiv (divisor: bigint | number): Decimal {
    if (BigInt(divisor) <= 0n) throw new RangeError('divisor must be a positive integer')
    return this.dividedBy(String(divisor), 0, 'ceil')
  }

  cmp (other: Operand): -1 | 0 | 1 { return this.big.cmp(Decimal.from(other).big) as -1 | 0 | 1 }
  lt (other: Operand): boolean { return this.cmp(other) < 0 }
  lte (other: Operand): boolean { return this.cmp(other) <= 0 }
  gt (other: Operand): boolean { return this.cmp(other) > 0 }
  gte (other: Operand): boolean { return this.cmp(other) >= 0 }
  eq (other: Operand): boolean { return this.cmp(other) === 0 }
  isZero (): boolean { return this.big.eq(0) }
  isNegative (): boolean { return this.big.lt(0) }
  isInteger (): boolean { return this.big.eq(this.big.round(0, ROUND_DOWN)) }

  /** Plain text: no exponent, no trailing zeros after the point. */
  toString (): string {
    const text = this.big.toFixed()
    return text === '-0' ? '0' : text
  }

  /** Text with at least `minPlaces` places after the point, as Lago prints units ("10.0"). */
  toFixedMin (minPlaces: number): string {
    const text = this.toString()
    const places = text.includes('.') ? text.length - text.indexOf('.') - 1 : 0
    return places >= minPlaces ? text : this.big.toFixed(minPlaces)
  }

  toSafeInteger (): number {
    if (!this.isInteger()) throw new RangeError(`${this.toString()} is not an integer`)
    const n = Number(this.toString())
    if (!Number.isSafeInteger(n)) throw new RangeError(`${this.toString()} exceeds the safe integer range`)
    return n
  }

  toJSON (): string { return this.toString() }
}
