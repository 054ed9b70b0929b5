import t from 'tap';
import {
  CONN_F_NOOUTPUT, CONN_F_TEMPLATE, CTPL_S_ASSURED, DIR_INPUT, DIR_INPUT_ONLY, DIR_OUTPUT,
  TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN,
} from '../../src/conn/flags.js';
import { tcpConnListen, tcpEvent, tcpNextState, tcpStateTransition, TCP_EV_ACK, TCP_EV_FIN, TCP_EV_RST, TCP_EV_SYN } from '../../src/conn/tcp.js';
import { FWD_DROUTE } from '../../src/svc/types.js';
import { a4, Registry, table } from './helpers.js';

const S = ['NONE', 'ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'SYNACK'];
const st = (name: string) => S.indexOf(name);
const EV: Record<string, number> = { syn: TCP_EV_SYN, fin: TCP_EV_FIN, ack: TCP_EV_ACK, rst: TCP_EV_RST };
const DIRS: Record<string, number> = { in: DIR_INPUT, out: DIR_OUTPUT, only: DIR_INPUT_ONLY };

t.test('event priority: RST > SYN > FIN > ACK, nothing -> -1', (t) => {
  t.equal(tcpEvent(TCP_SYN | TCP_RST | TCP_FIN | TCP_ACK), TCP_EV_RST);
  t.equal(tcpEvent(TCP_SYN | TCP_FIN | TCP_ACK), TCP_EV_SYN);
  t.equal(tcpEvent(TCP_FIN | TCP_ACK), TCP_EV_FIN);
  t.equal(tcpEvent(TCP_ACK | TCP_PSH), TCP_EV_ACK);
  t.equal(tcpEvent(TCP_PSH), -1);
  t.equal(tcpEvent(0), -1);
  t.end();
});

t.test('spot checks against the kernel tables (ip_vs_proto_tcp.c tcp_states / tcp_states_dos)', (t) => {
  // [table, dir, event, from, to], read off the kernel source.
  const cells: [string, string, string, string, string][] = [
    ['normal', 'in', 'syn', 'NONE', 'SYN_RECV'],
    ['normal', 'in', 'ack', 'SYN_RECV', 'ESTABLISHED'],
    ['normal', 'in', 'fin', 'ESTABLISHED', 'CLOSE_WAIT'],
    ['normal', 'in', 'rst', 'SYNACK', 'SYN_RECV'],
    ['normal', 'in', 'ack', 'LAST_ACK', 'CLOSE'],
    ['normal', 'in', 'rst', 'LAST_ACK', 'LAST_ACK'],
    ['normal', 'in', 'fin', 'SYN_SENT', 'SYN_SENT'],
    ['normal', 'in', 'syn', 'ESTABLISHED', 'ESTABLISHED'],
    ['normal', 'out', 'syn', 'NONE', 'SYN_SENT'],
    ['normal', 'out', 'fin', 'CLOSE_WAIT', 'TIME_WAIT'],
    ['normal', 'out', 'fin', 'ESTABLISHED', 'FIN_WAIT'],
    ['normal', 'out', 'ack', 'LISTEN', 'ESTABLISHED'],
    ['normal', 'out', 'rst', 'TIME_WAIT', 'TIME_WAIT'],
    ['normal', 'out', 'rst', 'SYN_SENT', 'SYN_SENT'],
    ['normal', 'out', 'syn', 'SYNACK', 'SYN_RECV'],
    ['normal', 'only', 'fin', 'ESTABLISHED', 'FIN_WAIT'],
    ['normal', 'only', 'rst', 'SYNACK', 'CLOSE'],
    ['normal', 'only', 'ack', 'FIN_WAIT', 'FIN_WAIT'],
    ['normal', 'only', 'syn', 'TIME_WAIT', 'SYN_RECV'],
    ['normal', 'only', 'ack', 'LAST_ACK', 'CLOSE'],
    ['secure', 'in', 'syn', 'SYNACK', 'SYNACK'],
    ['secure', 'in', 'ack', 'SYN_RECV', 'SYN_RECV'],
    ['secure', 'out', 'syn', 'SYN_RECV', 'SYNACK'],
    ['secure', 'only', 'syn', 'NONE', 'SYNACK'],
    ['secure', 'only', 'syn', 'ESTABLISHED', 'ESTABLISHED'],
    ['secure', 'only', 'fin', 'ESTABLISHED', 'FIN_WAIT'],
  ];
  for (const [tab, dir, ev, from, to] of cells) {
    t.equal(S[tcpNextState(tab === 'secure', DIRS[dir]!, EV[ev]!, st(from))], to, `${tab} ${dir} ${ev}: ${from} -> ${to}`);
  }
  t.end();
});

t.test('the secure table differs from the normal one in exactly the kernel cells', (t) => {
  const diffs: string[] = [];
  for (const [dn, d] of Object.entries(DIRS)) {
    for (const [en, e] of Object.entries(EV)) {
      for (let s = 0; s < S.length; s++) {
        const a = tcpNextState(false, d, e, s), b = tcpNextState(true, d, e, s);
        if (a !== b) diffs.push(`${dn} ${en} ${S[s]}: ${S[a]}/${S[b]}`);
      }
    }
  }
  const only = ['NONE', 'FIN_WAIT', 'TIME_WAIT', 'CLOSE', 'CLOSE_WAIT', 'LAST_ACK', 'LISTEN', 'SYNACK']
    .map((s) => `only syn ${s}: SYN_RECV/SYNACK`);
  t.same(diffs.sort(), [
    'in syn SYNACK: SYN_RECV/SYNACK',
    'in fin SYNACK: TIME_WAIT/SYNACK',
    'in ack SYN_RECV: ESTABLISHED/SYN_RECV',
    'in ack SYNACK: ESTABLISHED/SYNACK',
    'in rst SYNACK: SYN_RECV/CLOSE',
    'out syn SYN_RECV: SYN_RECV/SYNACK',
    'out syn SYNACK: SYN_RECV/SYNACK',
    ...only,
  ].sort());
  t.end();
});

function natConn() {
  const reg = new Registry();
  const dest = reg.add({ port: 80 });
  const { t: ct } = table(16, reg);
  const id = ct.create(4, 6, a4('198.51.100.7'), 40000, a4('10.0.0.1'), 80, a4('192.168.10.1'), 80, 0, 0, 0, dest.id, 0);
  return { ct, id, dest, reg };
}

t.test('a NAT connection from SYN to TIME_WAIT, with timeouts', (t) => {
  const { ct, id } = natConn();
  const steps: [number, number, string, number][] = [
    [DIR_INPUT, TCP_SYN, 'SYN_RECV', 60],
    [DIR_OUTPUT, TCP_SYN | TCP_ACK, 'SYN_RECV', 60],
    [DIR_INPUT, TCP_ACK, 'ESTABLISHED', 900],
    [DIR_OUTPUT, TCP_ACK | TCP_PSH, 'ESTABLISHED', 900],
    [DIR_INPUT, TCP_FIN | TCP_ACK, 'CLOSE_WAIT', 60],
    [DIR_OUTPUT, TCP_FIN | TCP_ACK, 'TIME_WAIT', 120],
    [DIR_INPUT, TCP_ACK, 'TIME_WAIT', 120],
  ];
  let now = 10;
  t.equal(ct.stateName(id), 'NONE');
  for (const [dir, fl, name, to] of steps) {
    now += 1;
    tcpStateTransition(ct, id, dir, fl, false, now);
    t.equal(ct.stateName(id), name);
    t.equal(ct.timeoutOf(id), to, `${name} timeout ${to}`);
    t.equal(ct.expiresOf(id), now + to, 're-armed from now');
  }
  t.end();
});

t.test('a DR connection uses the input-only table until an output packet shows up', (t) => {
  const reg = new Registry();
  const dest = reg.add({ fwd: FWD_DROUTE, port: 80 });
  const { t: ct } = table(16, reg);
  const id = ct.create(4, 6, a4('198.51.100.7'), 40000, a4('10.0.0.1'), 80, a4('192.168.10.1'), 80, 0, 0, 0, dest.id, 0);
  t.not(ct.flags[id]! & CONN_F_NOOUTPUT, 0);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_SYN, false, 0);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_ACK, false, 0);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_FIN | TCP_ACK, false, 0);
  t.equal(ct.stateName(id), 'FIN_WAIT', 'input-only: ES + fin -> FIN_WAIT');
  t.equal(ct.timeoutOf(id), 120);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_ACK, false, 0);
  t.equal(ct.stateName(id), 'FIN_WAIT', 'final ACK stays');

  const id2 = ct.create(4, 6, a4('198.51.100.8'), 40000, a4('10.0.0.1'), 80, a4('192.168.10.1'), 80, 0, 0, 0, dest.id, 0);
  tcpStateTransition(ct, id2, DIR_INPUT, TCP_SYN, false, 0);
  tcpStateTransition(ct, id2, DIR_OUTPUT, TCP_SYN | TCP_ACK, false, 0);
  t.equal(ct.flags[id2]! & CONN_F_NOOUTPUT, 0, 'an output packet clears NOOUTPUT');
  tcpStateTransition(ct, id2, DIR_INPUT, TCP_ACK, false, 0);
  tcpStateTransition(ct, id2, DIR_INPUT, TCP_FIN, false, 0);
  t.equal(ct.stateName(id2), 'CLOSE_WAIT', 'now the INPUT table: ES + fin -> CLOSE_WAIT');
  t.end();
});

t.test('a packet without RST/SYN/FIN/ACK closes the conn', (t) => {
  const { ct, id } = natConn();
  tcpStateTransition(ct, id, DIR_INPUT, TCP_SYN, false, 0);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_ACK, false, 0);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_PSH, false, 5);
  t.equal(ct.stateName(id), 'CLOSE');
  t.equal(ct.expiresOf(id), 15, 'CLOSE timeout 10 s');
  t.end();
});

t.test('secure_tcp: SYN_RECV needs the server SYN-ACK before ESTABLISHED', (t) => {
  const { ct, id, dest } = natConn();
  tcpStateTransition(ct, id, DIR_INPUT, TCP_SYN, true, 0);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_ACK, true, 0);
  t.equal(ct.stateName(id), 'SYN_RECV', 'a client ACK alone does not establish');
  tcpStateTransition(ct, id, DIR_OUTPUT, TCP_SYN | TCP_ACK, true, 0);
  t.equal(ct.stateName(id), 'SYNACK');
  t.equal(ct.timeoutOf(id), 120);
  t.equal(dest.activeConns, 1, 'SYNACK is active');
  tcpStateTransition(ct, id, DIR_INPUT, TCP_ACK, true, 0);
  t.equal(ct.stateName(id), 'SYNACK', 'secure table: SA + ack stays SA');
  tcpStateTransition(ct, id, DIR_INPUT, TCP_ACK, false, 0);
  t.equal(ct.stateName(id), 'ESTABLISHED', 'normal table again: SA + ack -> ES');
  t.end();
});

t.test('entering ESTABLISHED assures the template', (t) => {
  const { ct, id, dest } = natConn();
  const tpl = ct.create(4, 6, a4('198.51.100.0'), 0, a4('10.0.0.1'), 80, a4('192.168.10.1'), 80, CONN_F_TEMPLATE, 0, 0, dest.id, 0);
  ct.setControl(id, tpl);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_SYN, false, 0);
  t.equal(ct.stateName(tpl), 'NONE');
  tcpStateTransition(ct, id, DIR_INPUT, TCP_ACK, false, 0);
  t.equal(ct.stateOf(tpl), CTPL_S_ASSURED);
  t.equal(ct.stateName(tpl), 'ASSURED');
  t.end();
});

t.test('--set timeouts apply to later transitions', (t) => {
  const { ct, id } = natConn();
  t.same(ct.timeouts.getUser(), { tcp: 900, tcpFin: 120, udp: 300 }, 'defaults (ipvsadm -L --timeout: 900 120 300)');
  t.ok(ct.timeouts.setUser(1000, 0, 0));
  t.same(ct.timeouts.getUser(), { tcp: 1000, tcpFin: 120, udp: 300 }, '0 keeps the old value');
  tcpStateTransition(ct, id, DIR_INPUT, TCP_SYN, false, 0);
  tcpStateTransition(ct, id, DIR_INPUT, TCP_ACK, false, 0);
  t.equal(ct.timeoutOf(id), 1000);
  t.notOk(ct.timeouts.setUser(10, -1, 10), 'a negative value is EINVAL');
  t.same(ct.timeouts.getUser(), { tcp: 1000, tcpFin: 120, udp: 300 }, 'and changes nothing');
  t.notOk(ct.timeouts.setUser(0x7fffffff, 0, 0), 'too large is EINVAL');
  ct.timeouts.reset();
  t.equal(ct.timeouts.tcp[1], 900);
  t.end();
});

t.test('LISTEN (ip_vs_tcp_conn_listen)', (t) => {
  const { ct, id } = natConn();
  tcpConnListen(ct, id, 50);
  t.equal(ct.stateName(id), 'LISTEN');
  t.equal(ct.expiresOf(id), 170);
  tcpStateTransition(ct, id, DIR_OUTPUT, TCP_ACK, false, 60);
  t.equal(ct.stateName(id), 'ESTABLISHED', 'output ack in LISTEN -> ESTABLISHED');
  t.end();
});
