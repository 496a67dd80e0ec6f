import t from 'tap'
import { Decimal } from '../../../plugins/app/lago/decimal.js'

const d = (v: string | number): Decimal => Decimal.from(v)

t.test('parses decimal strings, numbers and exponents exactly; refuses the rest', async (t) => {
  t.equal(d('0.00375').toString(), '0.00375')
  t.equal(d('-12.50').toString(), '-12.5')
  t.equal(d('1e-7').toString(), '0.0000001')
  t.equal(d('1.5E3').toString(), '1500')
  t.equal(d(0.1).toString(), '0.1', 'a JS number reads as the decimal it prints as')
  t.equal(d(1741219251.59).toString(), '1741219251.59')
  t.equal(d('.5').toString(), '0.5')
  t.equal(d('000123.4500').toString(), '123.45')
  for (const bad of ['', '.', 'abc', '1,5', '1.2.3', '2024-01-01T00:00:00Z', 'NaN', null, undefined, {}, Infinity]) {
    t.equal(Decimal.parse(bad), null, `${JSON.stringify(bad)} is not a decimal`)
  }
  t.throws(() => Decimal.from('x'), RangeError)
})

t.test('adds, subtracts and multiplies without rounding', async (t) => {
  t.equal(d('0.1').plus('0.2').toString(), '0.3', 'where floats give 0.30000000000000004')
  t.equal(d('0.00375').times(3).toString(), '0.01125')
  t.equal(Decimal.sum(['0.00375', '0.000001', '12345678901234567890.123456789'].map(d)).toString(), '12345678901234567890.127207789')
  t.equal(d('1').minus('0.000000000000000000000001').toString(), '0.999999999999999999999999')
  t.equal(d('123456789.123456789').times('987654321.987654321').toString(), '121932631356500531.347203169112635269')
  t.equal(d('0.00375').shift(2).toString(), '0.375', 'dollars to cents')
  t.equal(d('37.5').shift(-2).toString(), '0.375')
})

t.test('rounds only when asked, with an explicit mode', async (t) => {
  t.equal(d('2.5').round(0).toString(), '3', 'half up')
  t.equal(d('-2.5').round(0).toString(), '-3', 'half away from zero for negatives')
  t.equal(d('2.4999').round(0).toString(), '2')
  t.equal(d('1.575').round(0).toString(), '2')
  t.equal(d('0.125').round(2).toString(), '0.13')
  t.equal(d('2.01').round(0, 'floor').toString(), '2')
  t.equal(d('2.01').round(0, 'ceil').toString(), '3')
  t.equal(d('-2.01').round(0, 'ceil').toString(), '-2')
  t.equal(d('-2.01').round(0, 'floor').toString(), '-3')
  t.equal(d('7').ceilDiv(3).toString(), '3', 'packages round up')
  t.equal(d('6').ceilDiv(3).toString(), '2')
  t.equal(d('0.5').ceilDiv(10).toString(), '1')
  t.equal(d('1').dividedBy('3', 5).toString(), '0.33333')
  t.equal(d('2').dividedBy('3', 2).toString(), '0.67')
  t.equal(d('-1').dividedBy('8', 2).toString(), '-0.13')
  t.throws(() => d('1').dividedBy(0, 2), RangeError)
})

t.test('compares and formats', async (t) => {
  t.ok(d('0.10').eq('0.1'))
  t.ok(d('10').gt('9.999'))
  t.equal(d('10').toFixedMin(1), '10.0', 'units as Lago prints them')
  t.equal(d('0.25').toFixedMin(1), '0.25')
  t.equal(d('250').toSafeInteger(), 250)
  t.throws(() => d('0.5').toSafeInteger(), RangeError)
  t.throws(() => d('90071992547409930').toSafeInteger(), RangeError)
  t.equal(JSON.stringify({ v: d('0.003750') }), '{"v":"0.00375"}', 'serializes as a decimal string, never a float')
})

t.test('zero has one spelling however it is written', async (t) => {
  for (const text of ['0', '0.0', '-0.00', '000', '0e5', '0.000e-3']) t.equal(Decimal.from(text).toString(), '0', text)
  t.equal(Decimal.from('1.5').minus('1.5').toString(), '0')
  t.equal(Decimal.from('0.10').times('0').toString(), '0')
})
