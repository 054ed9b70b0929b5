import t from 'tap';
import { Ip4Set } from '../../src/util/ip4-set.js';

t.test('Ip4Set: membership, duplicates, 0.0.0.0 never a member', async (t) => {
  const empty = new Ip4Set();
  t.equal(empty.size, 0);
  t.notOk(empty.has(0x0a000001));
  const s = new Ip4Set([0x0a000001, 0xc0a80001, 0x0a000001, 0, 0xffffffff]);
  t.equal(s.size, 3, 'duplicates and 0 left out');
  for (const a of [0x0a000001, 0xc0a80001, 0xffffffff]) t.ok(s.has(a), `has ${a.toString(16)}`);
  for (const a of [0, 0x0a000002, 0xc0a80000]) t.notOk(s.has(a), `not ${a.toString(16)}`);
  // Many members, colliding home slots: every member found, no non-member.
  const members = Array.from({ length: 5000 }, (_, i) => (0x0a000000 + i * 65536) >>> 0);
  const big = new Ip4Set(members);
  t.equal(big.size, 5000);
  t.ok(members.every((a) => big.has(a)), 'all 5000 members');
  t.notOk(members.some((a) => big.has((a + 1) >>> 0)), 'no neighbour address');
});
