import t from 'tap';
import { CONN_F_TEMPLATE, CTPL_S_ASSURED, DIR_INPUT, TCP_ACK, TCP_RST, TCP_SYN } from '../../src/conn/flags.js';
import { tcpStateTransition } from '../../src/conn/tcp.js';
import { a4, Registry, table } from './helpers.js';

const TCP = 6;
const c = a4('198.51.100.7'), v = a4('10.0.0.1'), d = a4('192.168.10.1');

function setup(capacity = 32) {
  const reg = new Registry();
  const dest = reg.add({ port: 80 });
  const { t: ct } = table(capacity, reg);
  return { ct, dest };
}

t.test('a conn vanishes at the second its timeout says, not before', (t) => {
  const { ct, dest } = setup();
  const id = ct.create(4, TCP, c, 1000, v, 80, d, 80, 0, 0, 0, dest.id, 100);
  t.equal(ct.timeoutOf(id), 3, 'new entries get 3 s');
  tcpStateTransition(ct, id, DIR_INPUT, TCP_SYN, false, 100); // NONE -> SYN_RECV, 60 s
  t.equal(ct.remaining(id, 100), 60);
  const expired: number[] = [];
  t.equal(ct.runExpiry(159, (x) => expired.push(x)), 0);
  t.ok(ct.isLive(id), 'alive at 159');
  t.equal(ct.lookupIn(4, TCP, c, 1000, v, 80), id);
  t.equal(ct.runExpiry(160, (x) => expired.push(x)), 1);
  t.same(expired, [id], 'onExpire saw it');
  t.notOk(ct.isLive(id), 'gone at 160');
  t.equal(ct.lookupIn(4, TCP, c, 1000, v, 80), -1);
  t.equal(dest.inactConns + dest.activeConns, 0, 'dest uncounted');
  t.equal(dest.refcnt, 0);
  t.end();
});

t.test('the 3 s initial timeout applies if no state change happens', (t) => {
  const { ct, dest } = setup();
  const id = ct.create(4, TCP, c, 1000, v, 80, d, 80, 0, 0, 0, dest.id, 10);
  ct.runExpiry(12);
  t.ok(ct.isLive(id));
  ct.runExpiry(13);
  t.notOk(ct.isLive(id));
  t.end();
});

t.test('touch re-arms from now; a shorter timeout moves the expiry earlier', (t) => {
  const { ct, dest } = setup();
  const id = ct.create(4, TCP, c, 1000, v, 80, d, 80, 0, 0, 0, dest.id, 100);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_SYN, false, 100); // 60 s -> 160
  ct.runExpiry(150);
  ct.touch(id, 150); // -> 210
  ct.runExpiry(209);
  t.ok(ct.isLive(id), 'touched conn alive at 209');
  tcpStateTransition(ct, id, DIR_INPUT, TCP_ACK, false, 209); // ESTABLISHED, 900 s -> 1109
  ct.runExpiry(1000);
  t.ok(ct.isLive(id), 'established conn alive at 1000');
  tcpStateTransition(ct, id, DIR_INPUT, TCP_RST, false, 1000); // CLOSE, 10 s -> 1010
  t.equal(ct.expiresOf(id), 1010);
  ct.runExpiry(1009);
  t.ok(ct.isLive(id), 'alive at 1009');
  ct.runExpiry(1010);
  t.notOk(ct.isLive(id), 'closed conn gone at 1010, long before its old 1109');
  t.end();
});

t.test('fractional clock values: expiry waits for the deadline', (t) => {
  const { ct, dest } = setup();
  const id = ct.create(4, TCP, c, 1000, v, 80, d, 80, 0, 0, 0, dest.id, 10.5);
  ct.setTimeout(id, 10, 10.5); // due at 20.5
  ct.runExpiry(20.4);
  t.ok(ct.isLive(id), 'not yet at 20.4');
  ct.runExpiry(21);
  t.notOk(ct.isLive(id), 'gone by 21');
  t.end();
});

t.test('a template that still controls conns is postponed by 60 s steps', (t) => {
  const { ct, dest } = setup();
  const tpl = ct.create(4, TCP, a4('198.51.100.0'), 0, v, 80, d, 80, CONN_F_TEMPLATE, 0, 0, dest.id, 0);
  ct.setTimeout(tpl, 360, 0);
  const conn = ct.create(4, TCP, c, 1000, v, 80, d, 80, 0, 0, 0, dest.id, 0);
  ct.setControl(conn, tpl);
  t.equal(ct.nControlled[tpl], 1);
  ct.setTimeout(conn, 870, 0);

  ct.runExpiry(359);
  t.equal(ct.expiresOf(tpl), 360);
  ct.runExpiry(360);
  t.ok(ct.isLive(tpl), 'template kept at 360');
  t.equal(ct.expiresOf(tpl), 420, 'next try 60 s later');
  t.equal(ct.timeoutOf(tpl), 60, 'and its timeout is now 60 s (kernel sets cp->timeout)');
  ct.runExpiry(869);
  t.equal(ct.expiresOf(tpl), 900, 'postponed again and again: 420, 480, ..., 900');
  ct.runExpiry(870);
  t.notOk(ct.isLive(conn), 'the controlled conn expires at 870');
  t.equal(ct.nControlled[tpl], 0);
  t.ok(ct.isLive(tpl), 'the template waits for its own timer');
  ct.runExpiry(899);
  t.ok(ct.isLive(tpl));
  ct.runExpiry(900);
  t.notOk(ct.isLive(tpl), 'gone at 900');
  t.equal(dest.persistConns, 0);
  t.equal(ct.count, 0);
  t.end();
});

t.test('a large clock jump expires everything that is due', (t) => {
  const { ct, dest } = setup(2000);
  const cc = new Uint32Array(4);
  for (let i = 0; i < 1000; i++) {
    cc[0] = 0x01000000 + i;
    const id = ct.create(4, TCP, cc, 2000, v, 80, d, 80, 0, 0, 0, dest.id, 0);
    ct.setTimeout(id, 100 + (i % 7) * 1000, 0); // up to 6100 s: beyond one wheel turn (4096 s)
  }
  const withTimeoutAbove = (x: number) => [...Array(1000).keys()].filter((i) => 100 + (i % 7) * 1000 > x).length;
  ct.runExpiry(5000);
  t.equal(ct.count, withTimeoutAbove(5000), 'only the 5100 s and 6100 s conns survive 5000');
  ct.runExpiry(6099);
  t.equal(ct.count, withTimeoutAbove(6099), 'only the 6100 s conns survive 6099');
  ct.runExpiry(6100);
  t.equal(ct.count, 0, 'and they go at 6100');
  ct.create(4, TCP, cc, 2000, v, 80, d, 80, 0, 0, 0, dest.id, 6100);
  ct.runExpiry(100_000);
  t.equal(ct.count, 0, 'an entry made before a long jump goes too');
  t.equal(dest.inactConns, 0);
  t.end();
});

t.test('expire() is the kernel expire_now: it never takes the controller along', (t) => {
  const { ct, dest } = setup();
  const tpl = ct.create(4, TCP, a4('198.51.100.0'), 0, v, 80, d, 80, CONN_F_TEMPLATE, 0, 0, dest.id, 0);
  ct.setTimeout(tpl, 360, 0);
  const a = ct.create(4, TCP, c, 1000, v, 80, d, 80, 0, 0, 0, dest.id, 0);
  ct.setControl(a, tpl);
  t.notOk(ct.expire(tpl, 5), 'a controlling template cannot be expired now');
  t.ok(ct.isLive(tpl));
  t.equal(ct.expiresOf(tpl), 65, 'it is postponed by 60 s instead');
  t.ok(ct.expire(a, 5), 'the conn goes');
  t.ok(ct.isLive(tpl), 'expire_now keeps the controller (timeout not 0)');
  t.equal(ct.nControlled[tpl], 0);

  // Deleting through a sweep (timeout 0) drops a template left without conns unless it is ASSURED.
  const b = ct.create(4, TCP, c, 1001, v, 80, d, 80, 0, 0, 0, dest.id, 10);
  ct.setControl(b, tpl);
  const n = ct.expireByDest(dest.id, 10);
  t.equal(n, 2, 'conn and its template');
  t.equal(ct.count, 0);
  t.end();
});

t.test('expireByDest / expireBySvc / flush', (t) => {
  const reg = new Registry();
  const d1 = reg.add({ port: 80 });
  const d2 = reg.add({ port: 80 });
  const { t: ct } = table(64, reg);
  const cc = new Uint32Array(4);
  const tpl1 = ct.create(4, TCP, a4('198.51.100.0'), 0, v, 80, d, 80, CONN_F_TEMPLATE, 0, 1, d1.id, 0);
  ct.setState(tpl1, CTPL_S_ASSURED);
  for (let i = 0; i < 10; i++) {
    cc[0] = 0x0b000000 + i;
    const id = ct.create(4, TCP, cc, 3000, v, 80, d, 80, 0, 0, i < 5 ? 1 : 2, i < 5 ? d1.id : d2.id, 0);
    if (i < 3) ct.setControl(id, tpl1);
  }
  t.equal(ct.count, 11);
  t.equal(ct.expireByDest(d1.id, 1), 6, 'five conns of d1 and their (assured) template');
  t.equal(d1.inactConns + d1.activeConns + d1.persistConns, 0);
  t.equal(d1.refcnt, 0);
  t.equal(d2.inactConns, 5, 'd2 untouched');
  cc[0] = 0x0b000007;
  t.ok(ct.lookupIn(4, TCP, cc, 3000, v, 80) >= 0, 'a d2 conn still found');
  t.equal(ct.expireBySvc(2, 1), 5);
  t.equal(ct.count, 0);

  // flush also untangles templates that control conns.
  const tpl = ct.create(4, TCP, a4('198.51.100.0'), 0, v, 80, d, 80, CONN_F_TEMPLATE, 0, 1, d1.id, 0);
  for (let i = 0; i < 4; i++) {
    cc[0] = 0x0c000000 + i;
    const id = ct.create(4, TCP, cc, 3000, v, 80, d, 80, 0, 0, 1, d1.id, 0);
    ct.setControl(id, tpl);
  }
  const seen: number[] = [];
  t.equal(ct.flush(2, (id) => seen.push(id)), 5);
  t.equal(seen.length, 5, 'callback for each');
  t.equal(ct.count, 0);
  t.equal(d1.refcnt, 0);
  t.end();
});

t.test('one-packet style free keeps the template', (t) => {
  const { ct, dest } = setup();
  const tpl = ct.create(4, 17, a4('198.51.100.0'), 0, v, 53, d, 53, CONN_F_TEMPLATE, 0, 0, dest.id, 0);
  ct.setTimeout(tpl, 300, 0);
  const id = ct.create(4, 17, c, 5353, v, 53, d, 53, 0x2000, 0, 0, dest.id, 0);
  ct.setControl(id, tpl);
  ct.setTimeout(id, 300, 0);
  t.notOk(ct.free(tpl), 'a controlling entry is not freed');
  t.ok(ct.free(id));
  t.ok(ct.isLive(tpl), 'template stays for the next packet');
  t.equal(ct.nControlled[tpl], 0);
  t.end();
});

t.test('deleting the last conn of a chain DATA -> CTL -> TPL drops a non-assured template, keeps an assured one', (t) => {
  for (const assured of [false, true]) {
    const reg = new Registry();
    const d1 = reg.add({ port: 21 });
    const d2 = reg.add({ port: 20 });
    const { t: ct } = table(16, reg);
    const tpl = ct.create(4, TCP, a4('198.51.100.0'), 0, v, 0, d, 0, CONN_F_TEMPLATE, 0, 0, d1.id, 0);
    ct.setTimeout(tpl, 360, 0);
    if (assured) ct.setState(tpl, CTPL_S_ASSURED);
    const ctl = ct.create(4, TCP, c, 1000, v, 21, d, 21, 0, 0, 0, d1.id, 0);
    ct.setControl(ctl, tpl);
    const data = ct.create(4, TCP, c, 1001, v, 20, d, 20, 0, 0, 0, d2.id, 0);
    ct.setControl(data, ctl);
    t.equal(ct.expireByDest(d2.id, 5), assured ? 2 : 3, assured ? 'data and control conn' : 'data, control conn and template');
    t.notOk(ct.isLive(ctl), 'the control conn left without data goes');
    t.equal(ct.isLive(tpl), assured, assured ? 'assured template stays' : 'non-assured template goes');
  }
  t.end();
});
