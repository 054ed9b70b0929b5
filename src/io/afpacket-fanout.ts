/**
 * PACKET_FANOUT for several data-plane processes (or workers) on the same interfaces.
 *
 * Hash fanout keeps a flow on one member, which is what a connection table needs; but
 * the kernel's flow hash of an ARP frame covers no address (the flow dissector does not
 * look inside ARP), so every ARP frame would go to one member, and an IPv6 Neighbor
 * Advertisement goes to whichever member its addresses hash to. A member that never sees
 * the reply to its own ARP request or Neighbor Solicitation never resolves its next hops.
 * So with fanout every member reads its data frames from the group socket, whose cBPF
 * filter refuses neighbour traffic (ARP, ICMPv6 types 133-137), and neighbour traffic from
 * a second socket per interface outside the group, with the opposite filter: every member
 * sees every ARP and ND frame (each answers a request for a VIP: the requester gets the
 * same answer more than once, which is harmless). Measured without that second socket: two
 * DR daemons in a group answered 19 of 40 connections (the other daemon's 21 waited for a
 * next hop that never resolved); with it, all of them.
 * A group member is fed by the group's hook, which ignores the socket's PACKET_IGNORE_OUTGOING:
 * the group is joined with PACKET_FANOUT_FLAG_IGNORE_OUTGOING instead, else every frame a member
 * sends would come back to it and be forwarded again.
 */
import koffi from 'koffi';
import {
  PACKET_FANOUT_FLAG_DEFRAG, PACKET_FANOUT_FLAG_IGNORE_OUTGOING, PACKET_FANOUT_HASH, SOL_SOCKET, check, libc,
} from './afpacket-libc.js';

/** One receive socket of a backend: which interface (index into its list) and what it reads. */
export interface RxRole {
  iface: number;
  /** true: the socket outside the fanout group that reads ARP/ND (attachFanoutFilter). */
  neighbour: boolean;
}

/**
 * The receive sockets a backend opens on `n` interfaces: one per interface, and with fanout
 * one more per interface for the neighbour traffic (the group's sockets come first).
 */
export function rxRoles(n: number, fanout: boolean): RxRole[] {
  const roles: RxRole[] = [];
  for (let k = 0; k < n; k++) roles.push({ iface: k, neighbour: false });
  if (fanout) for (let k = 0; k < n; k++) roles.push({ iface: k, neighbour: true });
  return roles;
}

/**
 * The PACKET_FANOUT option word for interface `iface`: hash mode with defrag; a group
 * belongs to one device, so interface k joins group `group + k`; and a member is fed by the
 * group's hook, which ignores the socket's PACKET_IGNORE_OUTGOING, so the group itself must
 * ignore outgoing frames (else every frame a member sends comes back to be forwarded again).
 */
export function fanoutJoinValue(group: number, iface: number, ignoreOutgoing: boolean): number {
  const flags = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG | (ignoreOutgoing ? PACKET_FANOUT_FLAG_IGNORE_OUTGOING : 0);
  return ((group + iface) & 0xffff) | (flags << 16);
}

export const SO_ATTACH_FILTER = 26;

// struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }
const LD_H_ABS = 0x28;
const LD_B_ABS = 0x30;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JGT_K = 0x25;
const RET_K = 0x06;
const ACCEPT = 0x40000;

/**
 * The classifier, offsets from the Ethernet header (the kernel hands packet-socket filters
 * the frame without an offloaded VLAN tag): neighbour frames go to `ctl`, the rest to `data`.
 */
function program(neighbour: boolean): Array<[number, number, number, number]> {
  const data = neighbour ? 0 : ACCEPT;
  const ctl = neighbour ? ACCEPT : 0;
  return [
    [LD_H_ABS, 0, 0, 12], //           0: EtherType
    [JEQ_K, 7, 0, 0x0806], //          1: ARP → 9
    [JEQ_K, 0, 5, 0x86dd], //          2: not IPv6 → 8
    [LD_B_ABS, 0, 0, 20], //           3: IPv6 next header
    [JEQ_K, 0, 3, 58], //              4: not ICMPv6 → 8
    [LD_B_ABS, 0, 0, 54], //           5: ICMPv6 type
    [JGE_K, 0, 1, 133], //             6: below Router Solicitation → 8
    [JGT_K, 0, 1, 137], //             7: above Redirect → 8, else → 9
    [RET_K, 0, 0, data], //            8
    [RET_K, 0, 0, ctl], //             9
  ];
}

/**
 * Attaches the fanout classifier to `fd`: `neighbour` true keeps only ARP and IPv6
 * neighbour-discovery frames (the socket outside the group), false keeps everything else
 * (the group socket). Attach before bind(): no frame of the other kind slips in.
 */
export function attachFanoutFilter(fd: number, neighbour: boolean): void {
  const prog = program(neighbour);
  const ab = new ArrayBuffer(prog.length * 8 + 16);
  const dv = new DataView(ab);
  for (let i = 0; i < prog.length; i++) {
    const [code, jt, jf, k] = prog[i]!;
    dv.setUint16(i * 8, code, true);
    dv.setUint8(i * 8 + 2, jt);
    dv.setUint8(i * 8 + 3, jf);
    dv.setUint32(i * 8 + 4, k, true);
  }
  const u8 = new Uint8Array(ab);
  const base = Number(koffi.address(u8));
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; } (the pointer at 8 on 64-bit).
  const fp = prog.length * 8;
  dv.setUint16(fp, prog.length, true);
  dv.setBigUint64(fp + 8, BigInt(base), true);
  check(libc().setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, base + fp, 16), 'setsockopt(SO_ATTACH_FILTER)');
}
