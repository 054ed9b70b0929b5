/**
 * Fragmentation of a frame that a transmitter returned as XMIT_FRAGMENT (the kernel sends those
 * with skb->ignore_df = 1, so ip_fragment / ip6_fragment split them instead of sending
 * frag-needed). IPv4 (fragmentIpv4), like ip_do_fragment: each fragment carries (mtu − header) & ~7 data bytes, the original ID,
 * offsets continue the original's (a fragment can be fragmented again), MF on all but the last
 * (and on the last when the original had MF), DF cleared, options without the "copied" bit
 * replaced by NOOPs after the first fragment (ip_options_fragment), header checksum per
 * fragment. IPv6 (fragmentIpv6) is needed for IPv6 tunnel outer headers. The link-layer header of
 * the input frame is repeated in front of every fragment. Output goes to a separate buffer,
 * frames back to back. No allocation.
 */
import type { PacketInfo } from '../packet/info.js';
import { setIpv4HeaderChecksum } from '../packet/checksum.js';

/**
 * Fragments the IPv4 packet of the frame described by `info` (in `buf`) to `mtu` IP bytes.
 * Writes the fragments as frames into `out` from `outOff`, their lengths into `lens`.
 * Returns the number of fragments, or 0 when it cannot (not IPv4, mtu too small for 8 data
 * bytes, `out`/`lens` too small, or the packet already fits).
 */
export function fragmentIpv4(buf: Uint8Array, info: PacketInfo, mtu: number, out: Uint8Array, outOff: number, lens: Uint32Array): number {
  if (info.af !== 4 || info.ipLen <= mtu) return 0;
  const l3 = info.l3Off;
  const hl = info.l3HdrLen;
  const l2len = l3 - info.frameOff;
  const per = (mtu - hl) & ~7;
  if (per <= 0) return 0;
  const dataLen = info.ipLen - hl;
  const count = Math.ceil(dataLen / per);
  if (count > lens.length) return 0;
  if (outOff < 0 || outOff + count * (l2len + hl) + dataLen > out.length) return 0;
  const frag0 = (buf[l3 + 6]! << 8) | buf[l3 + 7]!;
  const base = (frag0 & 0x1fff) << 3;
  const origMf = (frag0 & 0x2000) !== 0;
  let o = outOff;
  for (let i = 0, pos = 0; i < count; i++, pos += per) {
    const chunk = dataLen - pos < per ? dataLen - pos : per;
    for (let k = 0; k < l2len + hl; k++) out[o + k] = buf[info.frameOff + k]!;
    const f3 = o + l2len;
    if (i > 0) noopUncopiedOptions(out, f3, hl);
    const src = l3 + hl + pos;
    const dst = f3 + hl;
    for (let k = 0; k < chunk; k++) out[dst + k] = buf[src + k]!;
    const tot = hl + chunk;
    out[f3 + 2] = tot >>> 8; out[f3 + 3] = tot & 0xff;
    const mf = i < count - 1 || origMf;
    const fo = ((base + pos) >>> 3) | (mf ? 0x2000 : 0);
    out[f3 + 6] = fo >>> 8; out[f3 + 7] = fo & 0xff;
    setIpv4HeaderChecksum(out, f3, hl);
    lens[i] = l2len + tot;
    o += l2len + tot;
  }
  return count;
}

/** ip_options_fragment: options whose type lacks the copied bit (0x80) become NOOPs. */
function noopUncopiedOptions(b: Uint8Array, l3: number, hl: number): void {
  let p = l3 + 20;
  const end = l3 + hl;
  while (p < end) {
    const t = b[p]!;
    if (t === 0) break; // end of option list
    if (t === 1) { p++; continue; }
    if (p + 1 >= end) break;
    const len = b[p + 1]!;
    if (len < 2 || p + len > end) break;
    if ((t & 0x80) === 0) for (let k = 0; k < len; k++) b[p + k] = 1;
    p += len;
  }
}

/**
 * IPv6 fragmentation (ip6_fragment), for the outer IPv6 header of a tunnelled packet: the
 * unfragmentable part (fixed header plus hop-by-hop / routing headers) is repeated, a fragment
 * header with identification `id` is inserted after it, each fragment carries
 * (mtu − unfragmentable − 8) & ~7 data bytes. Same output convention as fragmentIpv4.
 * Returns 0 when it cannot (not IPv6, already a fragment, too small, output too small).
 */
export function fragmentIpv6(buf: Uint8Array, info: PacketInfo, mtu: number, id: number, out: Uint8Array, outOff: number, lens: Uint32Array): number {
  if (info.af !== 6 || info.ipLen <= mtu || info.fragHdrOff >= 0) return 0;
  const l3 = info.l3Off;
  const end = l3 + info.ipLen;
  // Unfragmentable part: the fixed header and any hop-by-hop / routing headers.
  let nhAt = l3 + 6;
  let pos = l3 + 40;
  let nh = buf[nhAt]!;
  while ((nh === 0 || nh === 43) && pos + 2 <= end) {
    nhAt = pos;
    nh = buf[pos]!;
    pos += (buf[pos + 1]! + 1) << 3;
  }
  if (pos > end) return 0;
  const l2len = l3 - info.frameOff;
  const unfrag = pos - l3;
  const per = (mtu - unfrag - 8) & ~7;
  if (per <= 0) return 0;
  const dataLen = end - pos;
  const count = Math.ceil(dataLen / per);
  if (count > lens.length) return 0;
  if (outOff < 0 || outOff + count * (l2len + unfrag + 8) + dataLen > out.length) return 0;
  let o = outOff;
  for (let i = 0, p = 0; i < count; i++, p += per) {
    const chunk = dataLen - p < per ? dataLen - p : per;
    for (let k = 0; k < l2len + unfrag; k++) out[o + k] = buf[info.frameOff + k]!;
    const f3 = o + l2len;
    out[f3 + (nhAt - l3)] = 44;
    const plen = unfrag - 40 + 8 + chunk;
    out[f3 + 4] = plen >>> 8; out[f3 + 5] = plen & 0xff;
    const fh = f3 + unfrag;
    const fo = p | (i < count - 1 ? 1 : 0);
    out[fh] = nh; out[fh + 1] = 0;
    out[fh + 2] = fo >>> 8; out[fh + 3] = fo & 0xff;
    out[fh + 4] = id >>> 24; out[fh + 5] = (id >>> 16) & 0xff; out[fh + 6] = (id >>> 8) & 0xff; out[fh + 7] = id & 0xff;
    for (let k = 0; k < chunk; k++) out[fh + 8 + k] = buf[pos + p + k]!;
    lens[i] = l2len + unfrag + 8 + chunk;
    o += lens[i]!;
  }
  return count;
}
