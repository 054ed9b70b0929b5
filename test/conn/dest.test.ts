import t from 'tap';
import {
  CONN_F_DROUTE, CONN_F_FWD_MASK, CONN_F_INACTIVE, CONN_F_MASQ, CONN_F_NOOUTPUT, CONN_F_SYNC, CONN_F_TEMPLATE,
  CONN_F_TUNNEL, DIR_INPUT, DIR_OUTPUT, TCP_ACK, TCP_FIN, TCP_SYN,
} from '../../src/conn/flags.js';
import { tcpStateTransition } from '../../src/conn/tcp.js';
import { DEST_F_OVERLOAD, FWD_DROUTE, FWD_TUNNEL } from '../../src/svc/types.js';
import { a4, Registry, table } from './helpers.js';

const TCP = 6;
const v = a4('10.0.0.1'), d = a4('192.168.10.1');
const cc = new Uint32Array(4);

function conn(ct: ReturnType<typeof table>['t'], destId: number, i: number, flags = 0): number {
  cc[0] = 0x0b000000 + i;
  return ct.create(4, TCP, cc, 1000 + i, v, 80, d, 80, flags, 0, 0, destId, 0);
}

t.test('bind takes the forwarding flags from the dest', (t) => {
  const reg = new Registry();
  const nat = reg.add();
  const dr = reg.add({ fwd: FWD_DROUTE });
  const tun = reg.add({ fwd: FWD_TUNNEL });
  const { t: ct } = table(16, reg);
  const a = conn(ct, nat.id, 1), b = conn(ct, dr.id, 2), c = conn(ct, tun.id, 3);
  t.equal(ct.flags[a]! & CONN_F_FWD_MASK, CONN_F_MASQ);
  t.equal(ct.flags[a]! & CONN_F_NOOUTPUT, 0, 'NAT expects output packets');
  t.equal(ct.flags[b]! & CONN_F_FWD_MASK, CONN_F_DROUTE);
  t.not(ct.flags[b]! & CONN_F_NOOUTPUT, 0, 'DR: NOOUTPUT');
  t.equal(ct.flags[c]! & CONN_F_FWD_MASK, CONN_F_TUNNEL);
  t.not(ct.flags[c]! & CONN_F_INACTIVE, 0, 'new conns start inactive');
  t.same([nat.inactConns, dr.inactConns, tun.inactConns], [1, 1, 1]);
  t.same([nat.refcnt, dr.refcnt, tun.refcnt], [1, 1, 1]);
  t.end();
});

t.test('synced conns keep their activity flag; templates count as persistent', (t) => {
  const reg = new Registry();
  const dest = reg.add();
  const { t: ct } = table(16, reg);
  const active = conn(ct, dest.id, 1, CONN_F_SYNC | CONN_F_DROUTE);
  t.equal(dest.activeConns, 1, 'a synced conn without INACTIVE counts as active');
  t.equal(ct.flags[active]! & CONN_F_FWD_MASK, CONN_F_MASQ, 'the method comes from the local dest');
  conn(ct, dest.id, 2, CONN_F_SYNC | CONN_F_INACTIVE);
  t.equal(dest.inactConns, 1);
  const tpl = conn(ct, dest.id, 3, CONN_F_TEMPLATE);
  t.equal(dest.persistConns, 1);
  t.equal(dest.activeConns + dest.inactConns, 2, 'templates are not connections');
  ct.free(tpl);
  t.equal(dest.persistConns, 0);
  t.end();
});

t.test('active/inactive follow TCP states', (t) => {
  const reg = new Registry();
  const nat = reg.add();
  const dr = reg.add({ fwd: FWD_DROUTE });
  const { t: ct } = table(16, reg);
  const n = conn(ct, nat.id, 1);
  tcpStateTransition(ct, n, DIR_INPUT, TCP_SYN, false, 0); // SYN_RECV
  t.same([nat.activeConns, nat.inactConns], [1, 0], 'SYN_RECV is active');
  t.equal(ct.flags[n]! & CONN_F_INACTIVE, 0);
  tcpStateTransition(ct, n, DIR_OUTPUT, TCP_SYN | TCP_ACK, false, 0); // SR stays
  tcpStateTransition(ct, n, DIR_INPUT, TCP_ACK, false, 0); // ESTABLISHED
  t.same([nat.activeConns, nat.inactConns], [1, 0]);
  tcpStateTransition(ct, n, DIR_INPUT, TCP_FIN | TCP_ACK, false, 0); // CLOSE_WAIT
  t.same([nat.activeConns, nat.inactConns], [0, 1], 'CLOSE_WAIT is inactive');
  t.not(ct.flags[n]! & CONN_F_INACTIVE, 0);
  tcpStateTransition(ct, n, DIR_INPUT, TCP_SYN, false, 0); // CW + syn -> SYN_RECV
  t.same([nat.activeConns, nat.inactConns], [1, 0], 'back to active');

  const r = conn(ct, dr.id, 2);
  tcpStateTransition(ct, r, DIR_INPUT, TCP_SYN, false, 0);
  tcpStateTransition(ct, r, DIR_INPUT, TCP_ACK, false, 0);
  t.same([dr.activeConns, dr.inactConns], [1, 0], 'DR established: active');
  tcpStateTransition(ct, r, DIR_INPUT, TCP_FIN | TCP_ACK, false, 0); // input-only: ES + fin -> FIN_WAIT
  t.same([dr.activeConns, dr.inactConns], [0, 1], 'DR FIN_WAIT: inactive');
  ct.free(r);
  t.same([dr.activeConns, dr.inactConns, dr.refcnt], [0, 0, 0], 'uncounted from the right counter');
  ct.free(n);
  t.same([nat.activeConns, nat.inactConns, nat.refcnt], [0, 0, 0], 'active conn uncounted from active');
  t.end();
});

t.test('overload: set at the upper threshold, cleared below 3/4 of it without a lower threshold', (t) => {
  const reg = new Registry();
  const dest = reg.add({ uThreshold: 4 });
  const { t: ct } = table(16, reg);
  const ids = [1, 2, 3].map((i) => conn(ct, dest.id, i));
  t.equal(dest.flags & DEST_F_OVERLOAD, 0, '3 of 4: not overloaded');
  ids.push(conn(ct, dest.id, 4));
  t.not(dest.flags & DEST_F_OVERLOAD, 0, '4 of 4: overloaded');
  ct.free(ids.pop()!);
  t.not(dest.flags & DEST_F_OVERLOAD, 0, '3: 3*4 = 12 is not < 4*3 = 12, still overloaded');
  ct.free(ids.pop()!);
  t.equal(dest.flags & DEST_F_OVERLOAD, 0, '2: cleared');
  // Templates do not count towards the threshold.
  conn(ct, dest.id, 10, CONN_F_TEMPLATE);
  conn(ct, dest.id, 11, CONN_F_TEMPLATE);
  t.equal(dest.flags & DEST_F_OVERLOAD, 0, 'two templates on top of two conns: not overloaded');
  t.end();
});

t.test('overload with a lower threshold: cleared only below it', (t) => {
  const reg = new Registry();
  const dest = reg.add({ uThreshold: 4, lThreshold: 2 });
  const { t: ct } = table(16, reg);
  const ids = [1, 2, 3, 4].map((i) => conn(ct, dest.id, i));
  t.not(dest.flags & DEST_F_OVERLOAD, 0);
  ct.free(ids.pop()!);
  ct.free(ids.pop()!);
  t.not(dest.flags & DEST_F_OVERLOAD, 0, '2 is not below 2');
  ct.free(ids.pop()!);
  t.equal(dest.flags & DEST_F_OVERLOAD, 0, '1 < 2: cleared');
  t.end();
});

t.test('without thresholds any unbind clears the overload flag', (t) => {
  const reg = new Registry();
  const dest = reg.add();
  const { t: ct } = table(16, reg);
  const a = conn(ct, dest.id, 1);
  conn(ct, dest.id, 2);
  dest.flags |= DEST_F_OVERLOAD;
  conn(ct, dest.id, 3);
  t.not(dest.flags & DEST_F_OVERLOAD, 0, 'bind never clears it');
  ct.free(a);
  t.equal(dest.flags & DEST_F_OVERLOAD, 0, 'unbind does');
  t.end();
});

t.test('a conn without a dest touches no counters', (t) => {
  const reg = new Registry();
  const dest = reg.add();
  const { t: ct } = table(16, reg);
  const id = conn(ct, -1, 1, 4 /* BYPASS */);
  t.equal(ct.destId[id], -1);
  t.equal(ct.flags[id]! & CONN_F_INACTIVE, 0, 'no dest, no INACTIVE from its conn_flags');
  tcpStateTransition(ct, id, DIR_INPUT, TCP_SYN, false, 0);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_FIN, false, 0); // SR + fin -> TIME_WAIT (inactive state)
  t.equal(ct.stateName(id), 'TIME_WAIT');
  t.equal(ct.flags[id]! & CONN_F_INACTIVE, 0, 'INACTIVE untouched without a dest, as in the kernel');
  ct.free(id);
  t.same([dest.activeConns, dest.inactConns, dest.refcnt], [0, 0, 0]);
  t.end();
});
