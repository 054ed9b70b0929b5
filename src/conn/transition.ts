/**
 * ip_vs_set_state: run the protocol's state machine for one packet of a
 * connection. Protocols without a state machine (none own conns in current
 * kernels: AH/ESP reuse the UDP/500 conn, ICMP only relates to existing ones)
 * keep their timeout and are just re-armed.
 */
import type { ConnTable } from './table.js';
import { sctpStateTransition } from './sctp.js';
import { tcpStateTransition } from './tcp.js';
import { udpStateTransition } from './udp.js';

export function connStateTransition(t: ConnTable, id: number, dir: number, tcpFlags: number, sctpChunk: number,
  secureTcp: boolean, now: number): void {
  switch (t.proto[id]) {
    case 6: tcpStateTransition(t, id, dir, tcpFlags, secureTcp, now); break;
    case 17: udpStateTransition(t, id, dir, now); break;
    case 132: sctpStateTransition(t, id, dir, sctpChunk, now); break;
    default: t.touch(id, now); break;
  }
}
