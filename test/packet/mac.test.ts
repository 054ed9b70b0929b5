import t from 'tap';
import { formatMac, macEquals, parseMac } from '../../src/util/mac.js';

t.test('parseMac', async (t) => {
  t.same(parseMac('02:00:00:00:00:01'), Uint8Array.of(2, 0, 0, 0, 0, 1));
  t.same(parseMac('AA:bb:0c:d:e:F0'), Uint8Array.of(0xaa, 0xbb, 0x0c, 0x0d, 0x0e, 0xf0), 'case and single digits like ether_aton');
  t.same(parseMac('aa-bb-cc-dd-ee-ff'), Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff));
  for (const bad of ['', '02:00:00:00:00', '02:00:00:00:00:01:02', '02:00:00:00:00:001', '02:00-00:00:00:01',
    'g2:00:00:00:00:01', '02:00:00:00:00:01 ', '0200.0000.0001', '::::::']) {
    t.equal(parseMac(bad), null, JSON.stringify(bad));
  }
});

t.test('formatMac', async (t) => {
  t.equal(formatMac(Uint8Array.of(2, 0, 0xab, 0x0c, 0xff, 1)), '02:00:ab:0c:ff:01');
  const frame = Uint8Array.of(9, 9, 0xde, 0xad, 0xbe, 0xef, 0, 1);
  t.equal(formatMac(frame, 2), 'de:ad:be:ef:00:01', 'at an offset');
  t.equal(formatMac(parseMac('0:1:2:3:4:5')!), '00:01:02:03:04:05', 'round trip');
});

t.test('macEquals', async (t) => {
  const a = Uint8Array.of(0, 1, 2, 3, 4, 5, 6);
  t.ok(macEquals(a, 1, Uint8Array.of(1, 2, 3, 4, 5, 6), 0));
  t.notOk(macEquals(a, 0, Uint8Array.of(1, 2, 3, 4, 5, 6), 0));
});
