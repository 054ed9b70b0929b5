import t from 'tap';
import type { MarkRule } from '../../src/ctl/api.js';
import { CtlError } from '../../src/ctl/types.js';
import { FwmarkClassifier } from '../../src/svc/fwmark.js';
import { words } from './helpers.js';

function rule(addr: string, prefix: number, mark: number, more: Partial<MarkRule> = {}): MarkRule {
  return { af: addr.includes(':') ? 6 : 4, protocol: 0, addr, prefix, portLo: 0, portHi: 65535, mark, ...more };
}

function errno(fn: () => void): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return e instanceof CtlError ? e.errno : String(e);
  }
}

t.test('IPv4 prefixes, protocols and port ranges; first match wins', async (t) => {
  const c = new FwmarkClassifier();
  c.add(rule('10.0.0.0', 24, 1, { protocol: 6, portLo: 80, portHi: 80 }));
  c.add(rule('10.0.0.0', 24, 2, { protocol: 17 }));
  c.add(rule('10.0.0.0', 8, 3));
  c.add(rule('0.0.0.0', 0, 4, { portLo: 1000, portHi: 2000 }));
  t.equal(c.classify(4, 6, words('10.0.0.7'), 80), 1);
  t.equal(c.classify(4, 6, words('10.0.0.7'), 81), 3, 'port outside the range: next rule');
  t.equal(c.classify(4, 17, words('10.0.0.7'), 81), 2);
  t.equal(c.classify(4, 132, words('10.0.1.7'), 80), 3);
  t.equal(c.classify(4, 6, words('192.0.2.1'), 1500), 4, '/0 matches every address');
  t.equal(c.classify(4, 6, words('192.0.2.1'), 999), 0, 'no match: mark 0');
  t.equal(c.classify(4, 1, words('192.0.2.1'), 0), 0, 'port-less packets carry dport 0');
  t.equal(c.classify(6, 6, words('10.0.0.7'), 80), 0, 'rules are per family');
  const dirty = Uint32Array.of(words('10.0.0.7')[0]!, 1, 2, 3);
  t.equal(c.classify(4, 6, dirty, 80), 1, 'IPv4 reads word 0 only');
});

t.test('IPv6 prefixes across word boundaries', async (t) => {
  const c = new FwmarkClassifier();
  c.add(rule('2001:db8:1:2::', 64, 64));
  c.add(rule('2001:db8:1::', 48, 48));
  c.add(rule('2001:db8::8000:0', 97, 97));
  c.add(rule('2001:db8::1', 128, 128));
  t.equal(c.classify(6, 6, words('2001:db8:1:2::99'), 1), 64);
  t.equal(c.classify(6, 6, words('2001:db8:1:3::99'), 1), 48);
  t.equal(c.classify(6, 6, words('2001:db8::8000:1234'), 1), 97);
  t.equal(c.classify(6, 6, words('2001:db8::7fff:1234'), 1), 0, 'bit 97 differs');
  t.equal(c.classify(6, 6, words('2001:db8::1'), 1), 128);
  t.equal(c.classify(6, 6, words('2001:db8::2'), 1), 0);
});

t.test('add, list, delete, flush', async (t) => {
  const c = new FwmarkClassifier();
  const v0 = c.version;
  c.add(rule('10.0.0.5', 24, 1));
  t.ok(c.version > v0);
  t.same(c.list(), [rule('10.0.0.0', 24, 1)], 'address normalised to the network');
  t.equal(errno(() => c.add(rule('10.0.0.0', 24, 1))), 'EEXIST');
  t.equal(errno(() => c.add(rule('10.0.0.9', 24, 2))), 'EEXIST', 'same match, other mark');
  t.equal(errno(() => c.add(rule('10.0.0.0', 24, 2, { protocol: 6 }))), null, 'other protocol is another match');
  t.equal(errno(() => c.delete(rule('10.0.0.0', 24, 9))), 'ENOENT', 'mark must match too');
  t.equal(errno(() => c.delete(rule('10.0.0.0', 25, 1))), 'ENOENT');
  t.equal(errno(() => c.delete(rule('10.0.0.77', 24, 1))), null);
  t.same(c.list().map((r) => r.mark), [2]);
  c.add(rule('2001:db8::', 32, 3));
  t.equal(c.size, 2);
  c.flush();
  t.same(c.list(), []);
  t.equal(c.classify(6, 6, words('2001:db8::1'), 1), 0);
});

t.test('malformed rules', async (t) => {
  const c = new FwmarkClassifier();
  t.equal(errno(() => c.add(rule('10.0.0.0', 33, 1))), 'EINVAL');
  t.equal(errno(() => c.add(rule('2001:db8::', 129, 1))), 'EINVAL');
  t.equal(errno(() => c.add(rule('10.0.0.0', -1, 1))), 'EINVAL');
  t.equal(errno(() => c.add(rule('10.0.0.0', 8, 0))), 'EINVAL', 'mark 0 means "no mark"');
  t.equal(errno(() => c.add(rule('10.0.0.0', 8, 2 ** 32))), 'EINVAL');
  t.equal(errno(() => c.add(rule('10.0.0.0', 8, 1, { protocol: 1 }))), 'EINVAL');
  t.equal(errno(() => c.add(rule('10.0.0.0', 8, 1, { portLo: 10, portHi: 9 }))), 'EINVAL');
  t.equal(errno(() => c.add(rule('10.0.0.0', 8, 1, { portHi: 65536 }))), 'EINVAL');
  t.equal(errno(() => c.add(rule('10.0.0.300', 8, 1))), 'EINVAL');
  t.equal(errno(() => c.add({ ...rule('10.0.0.0', 8, 1), af: 6 })), 'EINVAL', 'IPv4 text for an IPv6 rule');
  t.equal(errno(() => c.add({ ...rule('10.0.0.0', 8, 1), af: 5 as 4 })), 'EAFNOSUPPORT');
  t.equal(c.size, 0);
});
