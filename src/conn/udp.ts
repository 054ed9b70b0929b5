/**
 * UDP "state machine" (ip_vs_proto_udp.c): one state, every packet re-arms
 * the udp timeout, and a reply (output direction) marks the controlling
 * template ASSURED. UDP conns never change state, so they stay counted in
 * InActConn for their whole life.
 */
import type { ConnTable } from './table.js';
import { DIR_OUTPUT, UDP_S_NORMAL } from './flags.js';

export function udpStateTransition(t: ConnTable, id: number, dir: number, now: number): void {
  t.setTimeout(id, t.timeouts.udp[UDP_S_NORMAL]!, now);
  if (dir === DIR_OUTPUT) t.assureControl(id);
}
