import t from 'tap';
import { CONN_F_TEMPLATE, DIR_INPUT, DIR_OUTPUT, TCP_SYN } from '../../src/conn/flags.js';
import { protoName, stateNameOf } from '../../src/conn/names.js';
import {
  SCTP_CID_ABORT, SCTP_CID_COOKIE_ACK, SCTP_CID_COOKIE_ECHO, SCTP_CID_DATA, SCTP_CID_INIT, SCTP_CID_INIT_ACK,
  SCTP_CID_SHUTDOWN, SCTP_CID_SHUTDOWN_ACK, SCTP_CID_SHUTDOWN_COMPLETE, sctpStateChunk, sctpStateTransition,
} from '../../src/conn/sctp.js';
import { connStateTransition } from '../../src/conn/transition.js';
import { udpStateTransition } from '../../src/conn/udp.js';
import { FWD_DROUTE } from '../../src/svc/types.js';
import { a4, Registry, table } from './helpers.js';

function make(proto: number, fwd = 0) {
  const reg = new Registry();
  const dest = reg.add({ port: 80, fwd });
  const { t: ct } = table(16, reg);
  const id = ct.create(4, proto, a4('198.51.100.7'), 40000, a4('10.0.0.1'), 80, a4('192.168.10.1'), 80, 0, 0, 0, dest.id, 0);
  return { ct, id, dest };
}

t.test('UDP: one state, 300 s, replies assure the template, always inactive', (t) => {
  const { ct, id, dest } = make(17);
  const tpl = ct.create(4, 17, a4('198.51.100.0'), 0, a4('10.0.0.1'), 80, a4('192.168.10.1'), 80, CONN_F_TEMPLATE, 0, 0, dest.id, 0);
  ct.setControl(id, tpl);
  udpStateTransition(ct, id, DIR_INPUT, 5);
  t.equal(ct.stateName(id), 'UDP');
  t.equal(ct.expiresOf(id), 305);
  t.equal(ct.stateName(tpl), 'NONE', 'a request does not assure');
  udpStateTransition(ct, id, DIR_OUTPUT, 6);
  t.equal(ct.stateName(tpl), 'ASSURED', 'a reply does');
  t.same([dest.activeConns, dest.inactConns], [0, 1], 'UDP counts as inactive');
  ct.timeouts.setUser(0, 0, 30);
  udpStateTransition(ct, id, DIR_INPUT, 10);
  t.equal(ct.expiresOf(id), 40, '--set udp applies');
  t.end();
});

t.test('SCTP: a NAT association through the kernel states', (t) => {
  const { ct, id, dest } = make(132);
  const steps: [number, number, string, number, boolean][] = [
    [DIR_INPUT, SCTP_CID_INIT, 'INIT1', 4, false],
    [DIR_OUTPUT, SCTP_CID_INIT_ACK, 'C-SENT', 61, false],
    [DIR_INPUT, SCTP_CID_COOKIE_ECHO, 'C-REPLIED', 61, false],
    [DIR_OUTPUT, SCTP_CID_COOKIE_ACK, 'ESTABLISHED', 900, true],
    [DIR_INPUT, SCTP_CID_DATA, 'ESTABLISHED', 900, true],
    [DIR_INPUT, SCTP_CID_SHUTDOWN, 'S-RECEIVED', 61, false],
    [DIR_OUTPUT, SCTP_CID_SHUTDOWN_ACK, 'S-ACK-SENT', 61, false],
    [DIR_INPUT, SCTP_CID_SHUTDOWN_COMPLETE, 'CLOSED', 61, false],
  ];
  for (const [dir, chunk, name, to, active] of steps) {
    sctpStateTransition(ct, id, dir, chunk, 100);
    t.equal(ct.stateName(id), name);
    t.equal(ct.timeoutOf(id), to);
    t.same([dest.activeConns, dest.inactConns], active ? [1, 0] : [0, 1], `${name} ${active ? 'active' : 'inactive'}`);
  }
  t.end();
});

t.test('SCTP: DR (input only), ABORT, unknown chunks and missing chunks', (t) => {
  const { ct, id, dest } = make(132, FWD_DROUTE);
  sctpStateTransition(ct, id, DIR_INPUT, SCTP_CID_INIT, 0);
  t.equal(ct.stateName(id), 'INIT1');
  sctpStateTransition(ct, id, DIR_INPUT, SCTP_CID_COOKIE_ECHO, 0);
  t.equal(ct.stateName(id), 'ESTABLISHED', 'input-only: INIT1 + COOKIE ECHO -> ESTABLISHED');
  t.equal(dest.activeConns, 1);
  sctpStateTransition(ct, id, DIR_INPUT, 200, 0);
  t.equal(ct.stateName(id), 'ESTABLISHED', 'unknown chunk type counts as DATA');
  const before = ct.expiresOf(id);
  sctpStateTransition(ct, id, DIR_INPUT, -1, 500);
  t.equal(ct.expiresOf(id), before, 'no chunk header: nothing happens');
  sctpStateTransition(ct, id, DIR_INPUT, SCTP_CID_ABORT, 0);
  t.equal(ct.stateName(id), 'CLOSED');
  t.equal(dest.activeConns, 0);
  t.end();
});

t.test('SCTP: COOKIE ECHO bundled with ABORT is an ABORT', (t) => {
  const buf = new Uint8Array(64);
  const off = 12;
  buf[off] = SCTP_CID_COOKIE_ECHO; buf[off + 2] = 0; buf[off + 3] = 10; // 10 bytes, padded to 12
  buf[off + 12] = SCTP_CID_ABORT;
  t.equal(sctpStateChunk(buf, off, 64), SCTP_CID_ABORT);
  t.equal(sctpStateChunk(buf, off, off + 15), SCTP_CID_COOKIE_ECHO, 'ABORT header not complete: ignored');
  buf[off + 12] = SCTP_CID_DATA;
  t.equal(sctpStateChunk(buf, off, 64), SCTP_CID_COOKIE_ECHO);
  buf[off] = SCTP_CID_INIT; buf[off + 12] = SCTP_CID_ABORT;
  t.equal(sctpStateChunk(buf, off, 64), SCTP_CID_INIT, 'only after COOKIE ECHO / COOKIE ACK');
  t.equal(sctpStateChunk(buf, off, off + 3), -1, 'truncated');
  t.end();
});

t.test('dispatch by protocol', (t) => {
  const tcp = make(6);
  connStateTransition(tcp.ct, tcp.id, DIR_INPUT, TCP_SYN, -1, false, 0);
  t.equal(tcp.ct.stateName(tcp.id), 'SYN_RECV');
  const sctp = make(132);
  connStateTransition(sctp.ct, sctp.id, DIR_INPUT, 0, SCTP_CID_INIT, false, 0);
  t.equal(sctp.ct.stateName(sctp.id), 'INIT1');
  const udp = make(17);
  connStateTransition(udp.ct, udp.id, DIR_INPUT, 0, -1, false, 0);
  t.equal(udp.ct.timeoutOf(udp.id), 300);
  t.end();
});

t.test('state and protocol names as /proc/net/ip_vs_conn prints them', (t) => {
  t.equal(stateNameOf(6, 0, 11), 'ERR!');
  t.equal(stateNameOf(17, 0, 0), 'UDP');
  t.equal(stateNameOf(132, 0, 3), 'C-SENT');
  t.equal(stateNameOf(132, 0, 9), 'S-SENT');
  t.equal(stateNameOf(0, 0, 0), 'NONE', 'protocol IP');
  t.equal(stateNameOf(51, 0, 0), 'ERR!', 'AH has no state names');
  t.equal(stateNameOf(6, CONN_F_TEMPLATE, 1), 'ASSURED', 'templates print their own state');
  t.equal(stateNameOf(6, CONN_F_TEMPLATE, 2), 'ERR!');
  t.same([0, 6, 17, 132, 1, 58, 51].map(protoName), ['IP', 'TCP', 'UDP', 'SCTP', 'ICMP', 'ICMPv6', 'IP_51']);
  t.end();
});
