/**
 * The TCP state machine of ip_vs_proto_tcp.c: the normal table (tcp_states),
 * the secure_tcp table (tcp_states_dos), each with INPUT, OUTPUT and
 * INPUT-ONLY parts, the flag -> event mapping, and the accounting done on a
 * state change.
 */
import type { ConnTable } from './table.js';
import * as connFlags from './flags.js';

// Module-local copies of the imported constants (see conn/table.ts): folded into the code
// instead of a live-binding load and hole check per use on every packet's state change.
const CONN_F_NOOUTPUT = connFlags.CONN_F_NOOUTPUT;
const DIR_INPUT_ONLY = connFlags.DIR_INPUT_ONLY;
const DIR_OUTPUT = connFlags.DIR_OUTPUT;
const TCP_ACK = connFlags.TCP_ACK;
const TCP_FIN = connFlags.TCP_FIN;
const TCP_RST = connFlags.TCP_RST;
const TCP_SYN = connFlags.TCP_SYN;
const TCP_S_CLOSE = connFlags.TCP_S_CLOSE;
const TCP_S_ESTABLISHED = connFlags.TCP_S_ESTABLISHED;
const TCP_S_LAST = connFlags.TCP_S_LAST;
const TCP_S_LISTEN = connFlags.TCP_S_LISTEN;
const TCP_S_SYNACK = connFlags.TCP_S_SYNACK;
const TCP_S_SYN_RECV = connFlags.TCP_S_SYN_RECV;
const TCP_S_SYN_SENT = connFlags.TCP_S_SYN_SENT;

// Events in table row order.
export const TCP_EV_SYN = 0;
export const TCP_EV_FIN = 1;
export const TCP_EV_ACK = 2;
export const TCP_EV_RST = 3;

/** tcp_state_idx: RST wins over SYN over FIN over ACK; -1 when none is set. */
export function tcpEvent(tcpFlags: number): number {
  if (tcpFlags & TCP_RST) return TCP_EV_RST;
  if (tcpFlags & TCP_SYN) return TCP_EV_SYN;
  if (tcpFlags & TCP_FIN) return TCP_EV_FIN;
  if (tcpFlags & TCP_ACK) return TCP_EV_ACK;
  return -1;
}

/** tcp_state_active: states counted in ActiveConn. */
export function tcpStateActive(state: number): boolean {
  return state === TCP_S_ESTABLISHED || state === TCP_S_SYN_SENT || state === TCP_S_SYN_RECV || state === TCP_S_SYNACK;
}

// Each row lists the next state for current states NO ES SS SR FW TW CL CW LA LI SA.
const ABBR: Record<string, number> = { NO: 0, ES: 1, SS: 2, SR: 3, FW: 4, TW: 5, CL: 6, CW: 7, LA: 8, LI: 9, SA: 10 };

const NORMAL = [
  // INPUT
  'SR ES ES SR SR SR SR SR SR SR SR', // syn
  'CL CW SS TW TW TW CL CW LA LI TW', // fin
  'ES ES SS ES FW TW CL CW CL LI ES', // ack
  'CL CL CL SR CL CL CL CL LA LI SR', // rst
  // OUTPUT
  'SS ES SS SR SS SS SS SS SS LI SR',
  'TW FW SS TW FW TW CL TW LA LI TW',
  'ES ES SS ES FW TW CL CW LA ES ES',
  'CL CL SS CL CL TW CL CL CL CL CL',
  // INPUT-ONLY
  'SR ES ES SR SR SR SR SR SR SR SR',
  'CL FW SS TW FW TW CL CW LA LI TW',
  'ES ES SS ES FW TW CL CW CL LI ES',
  'CL CL CL SR CL CL CL CL LA LI CL',
];

const SECURE = [
  // INPUT
  'SR ES ES SR SR SR SR SR SR SR SA',
  'CL CW SS TW TW TW CL CW LA LI SA',
  'ES ES SS SR FW TW CL CW CL LI SA',
  'CL CL CL SR CL CL CL CL LA LI CL',
  // OUTPUT
  'SS ES SS SA SS SS SS SS SS LI SA',
  'TW FW SS TW FW TW CL TW LA LI TW',
  'ES ES SS ES FW TW CL CW LA ES ES',
  'CL CL SS CL CL TW CL CL CL CL CL',
  // INPUT-ONLY
  'SA ES ES SR SA SA SA SA SA SA SA',
  'CL FW SS TW FW TW CL CW LA LI TW',
  'ES ES SS ES FW TW CL CW CL LI ES',
  'CL CL CL SR CL CL CL CL LA LI CL',
];

const ROW = TCP_S_LAST;
const DIR_SPAN = 4 * ROW;
const TABLE_SPAN = 3 * DIR_SPAN;

function build(): Uint8Array {
  const out = new Uint8Array(2 * TABLE_SPAN);
  [NORMAL, SECURE].forEach((rows, t) => {
    rows.forEach((row, r) => {
      const cells = row.split(' ');
      if (cells.length !== ROW) throw new Error('tcp state table row length');
      cells.forEach((c, s) => { out[t * TABLE_SPAN + r * ROW + s] = ABBR[c]!; });
    });
  });
  return out;
}

/** [secure][dir][event][state] flattened. */
const NEXT = build();

/** The next state the kernel table gives (no side effects). `dir` is DIR_INPUT, DIR_OUTPUT or DIR_INPUT_ONLY. */
export function tcpNextState(secure: boolean, dir: number, event: number, state: number): number {
  if (event < 0) return TCP_S_CLOSE;
  return NEXT[(secure ? TABLE_SPAN : 0) + dir * DIR_SPAN + event * ROW + state]!;
}

/**
 * set_tcp_state: one packet of connection `id` seen in direction `dir`.
 * A NOOUTPUT conn (DR/TUN) uses the INPUT-ONLY table until an output packet
 * is seen, which clears NOOUTPUT. A packet with none of RST/SYN/FIN/ACK moves
 * the conn to CLOSE. Crossing the active/inactive boundary moves the conn
 * between the dest's counters; entering ESTABLISHED assures the template.
 * Finally timeout := table[new state] and the expiry is re-armed from `now`
 * (even when the state did not change).
 */
export function tcpStateTransition(t: ConnTable, id: number, dir: number, tcpFlags: number, secure: boolean, now: number): void {
  let d = dir;
  const f = t.flags[id]!;
  if (f & CONN_F_NOOUTPUT) {
    if (dir === DIR_OUTPUT) t.flags[id] = f & ~CONN_F_NOOUTPUT;
    else d = DIR_INPUT_ONLY;
  }
  const cur = t.stateOf(id);
  const next = tcpNextState(secure, d, tcpEvent(tcpFlags), cur);
  if (next !== cur) {
    t.setActive(id, tcpStateActive(next));
    if (next === TCP_S_ESTABLISHED) t.assureControl(id);
    t.setState(id, next);
  }
  t.setTimeout(id, t.timeouts.tcp[next]!, now);
}

/** ip_vs_tcp_conn_listen: put a conn in LISTEN (used for FTP active data connections). */
export function tcpConnListen(t: ConnTable, id: number, now: number): void {
  t.setState(id, TCP_S_LISTEN);
  t.setTimeout(id, t.timeouts.tcp[TCP_S_LISTEN]!, now);
}
