import t from 'tap';
import { formatMac, macHi16, macLo32, parseMac, writeMacWords } from '../../src/util/mac.js';

t.test('MAC words: macHi16/macLo32 split a MAC, writeMacWords puts it back byte for byte', async (t) => {
  for (const text of ['02:00:00:00:00:01', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00', 'de:ad:be:ef:80:7f']) {
    const mac = parseMac(text)!;
    const hi = macHi16(mac);
    const lo = macLo32(mac);
    t.ok(hi >= 0 && hi <= 0xffff && lo >= 0 && lo <= 0xffffffff, `${text}: words in range`);
    const out = new Uint8Array(10).fill(0xaa);
    writeMacWords(out, 3, hi, lo);
    t.equal(formatMac(out, 3), text, `${text}: round trip`);
    t.same([out[2], out[9]], [0xaa, 0xaa], `${text}: nothing written outside the six bytes`);
  }
  const framed = Uint8Array.of(9, 9, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc);
  t.equal(macHi16(framed, 2), 0x1234, 'offset: high word');
  t.equal(macLo32(framed, 2), 0x56789abc, 'offset: low word, unsigned');
});
