import t from 'tap';
import { parseIp, parseIp4, parseIp6, formatIp, formatIp6, ip6 } from '../../src/util/ip.js';

t.test('IPv4 text like inet_pton/inet_ntop', async (t) => {
  t.equal(parseIp4('10.0.0.1'), 0x0a000001);
  t.equal(parseIp4('255.255.255.255'), 0xffffffff);
  t.equal(parseIp4('010.0.0.1'), null, 'leading zeros rejected');
  t.equal(parseIp4('1.2.3'), null);
  t.equal(parseIp4('1.2.3.256'), null);
  t.equal(parseIp4(' 1.2.3.4'), null);
});

t.test('IPv6 text round trips in glibc form', async (t) => {
  const cases: [string, string][] = [
    ['2001:db8::10', '2001:db8::10'], ['::', '::'], ['::1', '::1'], ['::2', '::2'],
    ['::1.2.3.4', '::1.2.3.4'], ['::ffff:10.0.0.1', '::ffff:10.0.0.1'], ['fe80:0:0:0:1:0:0:1', 'fe80::1:0:0:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['1:0:2:0:0:3:0:4', '1:0:2::3:0:4'], ['2001:DB8::A', '2001:db8::a'],
  ];
  for (const [i, o] of cases) t.equal(formatIp(parseIp(i)!), o, i);
  t.equal(parseIp6(':::'), null);
  t.equal(parseIp6('1::2::3'), null);
  t.equal(parseIp6('1:2:3:4:5:6:7:8:9'), null);
  t.equal(formatIp6(0, 0, 0, 2), '::2');
  t.equal(formatIp(ip6(0x20010db8, 0, 0, 1)), '2001:db8::1');
});
