/**
 * Direct routing (kernel ip_vs_dr_xmit / _v6): the IP packet is not changed except the TTL /
 * hop-limit decrement (and the IPv4 header checksum); the frame is re-addressed at the link
 * layer to the real server's MAC, which must accept the VIP locally. Hot path, in place.
 */
import type { PacketInfo } from '../packet/info.js';
import {
  MTU_DROP, MTU_ICMP, XMIT_DROP, XMIT_FRAG_NEEDED, XMIT_FRAGMENT, XMIT_OK, XMIT_TTL_EXCEEDED,
  decTtl, mtuCheck, mtuLen, setEthAddrs, type XmitResult,
} from './common.js';

/**
 * Decrements TTL, checks `mtu` (route MTU to the RS; `relayedIcmp` for an ICMP error relayed to
 * a DR conn, which never triggers frag-needed), writes `l2` (RS MAC, our MAC).
 */
export function xmitDr(buf: Uint8Array, info: PacketInfo, l2: Uint8Array, mtu: number, relayedIcmp: boolean, res: XmitResult): number {
  res.off = info.frameOff;
  res.len = info.frameLen;
  res.mtu = mtu;
  if (!decTtl(buf, info)) return XMIT_TTL_EXCEEDED;
  const m = mtuCheck(info, mtu, relayedIcmp, false);
  if (m === MTU_ICMP) return XMIT_FRAG_NEEDED;
  if (m === MTU_DROP) return XMIT_DROP;
  setEthAddrs(buf, info.frameOff, l2);
  return mtuLen(info) > mtu ? XMIT_FRAGMENT : XMIT_OK;
}
