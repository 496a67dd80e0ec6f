import path from 'node:path'
import Big from 'big.js'
import { chromium, type Browser, type Page } from 'playwright-core'

// The dashboard's browser tests: Debian's Chromium through playwright-core, and the page's figures as a person reads
// them, computed here independently of the page.

/** Screenshots and timings (ignored by git). */
export const OUTPUT = path.join(import.meta.dirname, '..', '..', 'test-output')
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

const DAY = 86_400_000
const isoDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10)
/** The page's default range: the last 30 UTC days including today, as [from, to). */
export function defaultRange (): { from: string, to: string } {
  const today = Date.parse(`${isoDay(Date.now())}T00:00:00.000Z`)
  return { from: new Date(today - 29 * DAY).toISOString(), to: new Date(today + DAY).toISOString() }
}

/** "$1,234.57" from an exact decimal, independently of the page: big.js rounds half up. */
export const dollars = (value: string): string => {
  const abs = new Big(value).abs()
  const places = abs.gt(0) && abs.lt('0.01') ? 4 : 2
  const [int, frac] = new Big(value).toFixed(places).split('.')
  return `$${int.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}.${frac}`
}

export async function launch (t: { teardown: (fn: () => unknown) => void }): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
  t.teardown(() => browser.close())
  return browser
}

/**
 * Console errors and failed requests of a page (a CSP violation or a missing file shows here). Refusals the page
 * expects are not errors: 401 (a wrong key), 403 (GET /api/organizations to a key that is not an admin's, an
 * endpoint another organization cannot read), 404.
 */
export function watchErrors (page: Page): string[] {
  const errors: string[] = []
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[134]/.test(m.text())) errors.push(m.text()) })
  page.on('pageerror', (err) => errors.push(err.message))
  return errors
}
