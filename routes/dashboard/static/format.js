// Numbers for people. Money arrives as exact decimal strings and is rounded here as a string (BigInt), never as
// a float; the exact value goes in the element's title.

const integer = new Intl.NumberFormat('en-US')
const rate = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 })

/** 1234567 → "1,234,567". */
export const count = (n) => integer.format(n)

/** Events per second: up to 2 decimals. */
export const perSecond = (n) => rate.format(n)

const groupThousands = (digits) => digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',')

/**
 * An exact decimal string rounded half-up to `places` decimals, with thousands separators: "1234.5678" → "1,234.57".
 * Done on the digits, so "0.1" + "0.2" problems never arise.
 */
export function decimal (value, places = 2) {
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(value))
  if (match === null) return String(value)
  const [, sign, int, frac = ''] = match
  const padded = (frac + '0'.repeat(places + 1)).slice(0, places + 1)
  let scaled = BigInt(int + padded.slice(0, places))
  if (Number(padded[places]) >= 5) scaled += 1n
  const text = scaled.toString().padStart(places + 1, '0')
  const whole = groupThousands(text.slice(0, text.length - places))
  const rounded = places > 0 ? `${whole}.${text.slice(text.length - places)}` : whole
  return scaled === 0n ? rounded : sign + rounded
}

/** USD for people: cents, or four decimals below a cent (LLM calls cost fractions of a cent). */
export function usd (value) {
  const abs = String(value).replace(/^-/, '')
  const belowACent = /^0\.00/.test(abs) && /[1-9]/.test(abs)
  return `$${decimal(value, belowACent ? 4 : 2)}`
}

const UNITS = [['day', 86_400], ['hour', 3_600], ['minute', 60], ['second', 1]]
const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' })

/** "3 minutes ago", "in 2 hours", "now". */
export function ago (iso, now = Date.now()) {
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000)
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === 'second') return relative.format(Math.round(seconds / size), unit)
  }
  return ''
}

/** A duration in seconds as "45 s", "12 min", "3 h 5 min", "2 d 4 h". */
export function duration (seconds) {
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min`
  if (s < 86_400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
  return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`
}

/** Full date and time for a title: "2026-11-26 01:23:45 UTC". */
export const exactTime = (iso) => new Date(iso).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
