/**
 * The SCTP state machine of ip_vs_proto_sctp.c: chunk type -> event, then a
 * next-state table per direction (INPUT, OUTPUT, INPUT-ONLY). Only
 * ESTABLISHED counts as active.
 */
import type { ConnTable } from './table.js';
import { CONN_F_NOOUTPUT, DIR_INPUT_ONLY, DIR_OUTPUT, SCTP_S_ESTABLISHED, SCTP_S_LAST } from './flags.js';

// SCTP chunk types live with the other wire constants (RFC 9260); re-exported for the state tests.
import { SCTP_CID_ABORT, SCTP_CID_COOKIE_ACK, SCTP_CID_COOKIE_ECHO } from '../packet/consts.js';
export {
  SCTP_CID_DATA, SCTP_CID_INIT, SCTP_CID_INIT_ACK, SCTP_CID_SACK, SCTP_CID_HEARTBEAT, SCTP_CID_HEARTBEAT_ACK,
  SCTP_CID_ABORT, SCTP_CID_SHUTDOWN, SCTP_CID_SHUTDOWN_ACK, SCTP_CID_ERROR, SCTP_CID_COOKIE_ECHO,
  SCTP_CID_COOKIE_ACK, SCTP_CID_SHUTDOWN_COMPLETE,
} from '../packet/consts.js';

// Events (enum ipvs_sctp_event_t), the table's row order.
export const SCTP_EV_DATA = 0;
export const SCTP_EV_INIT = 1;
export const SCTP_EV_INIT_ACK = 2;
export const SCTP_EV_COOKIE_ECHO = 3;
export const SCTP_EV_COOKIE_ACK = 4;
export const SCTP_EV_SHUTDOWN = 5;
export const SCTP_EV_SHUTDOWN_ACK = 6;
export const SCTP_EV_SHUTDOWN_COMPLETE = 7;
export const SCTP_EV_ERROR = 8;
export const SCTP_EV_ABORT = 9;
const SCTP_EV_LAST = 10;

/** sctp_events[]: chunk types 0..14; anything else counts as DATA. */
const EVENT_OF_CHUNK = Uint8Array.from([
  SCTP_EV_DATA, SCTP_EV_INIT, SCTP_EV_INIT_ACK, SCTP_EV_DATA, SCTP_EV_DATA, SCTP_EV_DATA, SCTP_EV_ABORT,
  SCTP_EV_SHUTDOWN, SCTP_EV_SHUTDOWN_ACK, SCTP_EV_ERROR, SCTP_EV_COOKIE_ECHO, SCTP_EV_COOKIE_ACK,
  SCTP_EV_DATA, SCTP_EV_DATA, SCTP_EV_SHUTDOWN_COMPLETE,
]);

export function sctpEvent(chunkType: number): number {
  return chunkType >= 0 && chunkType < EVENT_OF_CHUNK.length ? EVENT_OF_CHUNK[chunkType]! : SCTP_EV_DATA;
}

const ABBR: Record<string, number> = {
  NO: 0, I1: 1, IN: 2, CS: 3, CR: 4, CW: 5, CO: 6, CE: 7, ES: 8, SS: 9, SR: 10, SA: 11, RJ: 12, CL: 13,
};

// Rows: events d i i_a c_e c_a s s_a s_c err ab; columns: current state
// NO I1 IN CS CR CW CO CE ES SS SR SA RJ CL.
const ROWS = [
  // INPUT
  'ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL',
  'I1 IN IN CS CR CW CO CE ES SS SR SA IN IN',
  'CW CW CW CS CR CO CO CE ES SS SR SA RJ CL',
  'CR IN IN CR CR CW CO CE ES SS SR SA RJ CL',
  'ES I1 IN CS CR CW CO ES ES SS SR SA RJ CL',
  'SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL',
  'CL IN IN CS CR CW CO CE ES CL SR CL RJ CL',
  'CL CL CL CS CR CW CO CE ES SS SR CL RJ CL',
  'CL I1 IN CS CR CW CO CL ES SS SR SA RJ CL',
  'CL CL CL CL CL RJ CL CL CL CL CL CL CL CL',
  // OUTPUT
  'ES I1 IN CS CR CW CO CE ES SS SR SA RJ CL',
  'CW CW CW CW CW CW CW CW ES CW CW CW CW CW',
  'CS CS CS CS CR CW CO CE ES SS SR SA RJ CL',
  'CE CE CE CE CE CE CE CE ES SS SR SA RJ CL',
  'ES ES ES ES ES ES ES ES ES SS SR SA RJ CL',
  'SS SS SS SS SS SS SS SS SS SS SR SA RJ CL',
  'SA SA SA SA SA CW CO CE ES SA SA SA RJ CL',
  'CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL',
  'CL CL CL CL CL CW CO CE ES SS SR SA RJ CL',
  'CL RJ CL CL CL CL CL CL CL CL CL CL CL CL',
  // INPUT-ONLY
  'ES I1 IN CS CR ES CO CE ES SS SR SA RJ CL',
  'I1 IN IN IN IN IN CO CE ES SS SR SA IN IN',
  'CE CE CE CE CE CE CO CE ES SS SR SA RJ CL',
  'ES ES ES ES ES ES CO CE ES SS SR SA RJ CL',
  'ES I1 IN ES ES CW ES ES ES SS SR SA RJ CL',
  'SR I1 IN CS CR CW CO CE SR SS SR SA RJ CL',
  'CL IN IN CS CR CW CO CE CL CL SR CL RJ CL',
  'CL CL CL CL CL CW CO CE ES SS CL CL RJ CL',
  'CL I1 IN CS CR CW CO CE ES SS SR SA RJ CL',
  'CL CL CL CL CL RJ CL CL CL CL CL CL CL CL',
];

const NEXT = (() => {
  const out = new Uint8Array(3 * SCTP_EV_LAST * SCTP_S_LAST);
  ROWS.forEach((row, r) => {
    const cells = row.split(' ');
    if (cells.length !== SCTP_S_LAST) throw new Error('sctp state table row length');
    cells.forEach((c, s) => { out[r * SCTP_S_LAST + s] = ABBR[c]!; });
  });
  return out;
})();

/** The next state the kernel table gives (no side effects). */
export function sctpNextState(dir: number, event: number, state: number): number {
  return NEXT[(dir * SCTP_EV_LAST + event) * SCTP_S_LAST + state]!;
}

/**
 * The chunk type that drives the state machine: the first chunk's type, except
 * that a COOKIE ECHO or COOKIE ACK followed by an ABORT counts as the ABORT
 * (set_sctp_state). `chunkOff` is the first chunk header (SCTP header + 12);
 * returns -1 when the packet has no complete chunk header.
 */
export function sctpStateChunk(buf: Uint8Array, chunkOff: number, end: number): number {
  if (chunkOff + 4 > end) return -1;
  const type = buf[chunkOff]!;
  if (type === SCTP_CID_COOKIE_ECHO || type === SCTP_CID_COOKIE_ACK) {
    const clen = (buf[chunkOff + 2]! << 8) | buf[chunkOff + 3]!;
    if (clen >= 4) {
      const next = chunkOff + ((clen + 3) & ~3);
      if (next + 4 <= end && buf[next] === SCTP_CID_ABORT) return SCTP_CID_ABORT;
    }
  }
  return type;
}

/**
 * set_sctp_state: one packet of connection `id` in direction `dir` whose
 * state chunk (see sctpStateChunk) is `chunkType` (-1: no chunk, nothing
 * happens). NOOUTPUT conns use INPUT-ONLY until an output packet clears the
 * flag; entering/leaving ESTABLISHED moves the conn between the dest's
 * active/inactive counters; timeout := table[new state], re-armed from `now`.
 */
export function sctpStateTransition(t: ConnTable, id: number, dir: number, chunkType: number, now: number): void {
  if (chunkType < 0) return;
  let d = dir;
  const f = t.flags[id]!;
  if (f & CONN_F_NOOUTPUT) {
    if (dir === DIR_OUTPUT) t.flags[id] = f & ~CONN_F_NOOUTPUT;
    else d = DIR_INPUT_ONLY;
  }
  const cur = t.stateOf(id);
  const next = sctpNextState(d, sctpEvent(chunkType), cur);
  if (next !== cur) {
    t.setActive(id, next === SCTP_S_ESTABLISHED);
    if (next === SCTP_S_ESTABLISHED) t.assureControl(id);
    t.setState(id, next);
  }
  t.setTimeout(id, t.timeouts.sctp[next]!, now);
}
