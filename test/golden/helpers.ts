/**
 * Shared pieces of the golden packet tests: one address plan (clients, VIPs, real servers and
 * their MACs), a TestDirector that knows every neighbour, a field decoder for output frames
 * (our own parser, used for the exact values; tshark judges the same frames independently),
 * and byte-level comparison helpers.
 */
import { TestDirector, CLIENT_MAC, DIR_MAC, DIR_IP, GW_MAC, type Step } from '../core/harness.js';
import { PacketInfo, PARSE_OK } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';
import { rd16, rd32 } from '../../src/packet/bytes.js';
import { formatIp4, formatIp6 } from '../../src/util/ip.js';
import { formatMac } from '../../src/util/mac.js';
import type { Test } from 'tap';
import { dissect, badChecksums, tsharkMissing, tsharkTestOptions, type DissectedFrame } from '../util/tshark.js';

export { TestDirector, CLIENT_MAC, DIR_MAC, DIR_IP, GW_MAC, type Step };

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/** The address plan every golden test uses. */
export const IP = {
  client: '10.0.0.1',
  client2: '10.0.0.2',
  client3: '10.0.0.3',
  vip: '10.0.0.100',
  vip2: '10.0.0.101',
  rs1: '10.0.1.1',
  rs2: '10.0.1.2',
  rs3: '10.0.1.3',
  client6: '2001:db8:c::1',
  vip6: '2001:db8:f::100',
  rs61: '2001:db8:1::1',
  rs62: '2001:db8:1::2',
} as const;

export const MAC = {
  dir: DIR_MAC,
  client: CLIENT_MAC,
  gw: GW_MAC,
  rs1: '02:00:00:00:01:01',
  rs2: '02:00:00:00:01:02',
  rs3: '02:00:00:00:01:03',
  rs61: '02:00:00:00:06:01',
  rs62: '02:00:00:00:06:02',
} as const;

/** Every real server and the client side resolve; nothing else (no gateway) unless asked. */
export function director(opts: { mtu?: number; gw?: boolean; capacity?: number } = {}): TestDirector {
  return new TestDirector({
    neigh: {
      [IP.rs1]: MAC.rs1, [IP.rs2]: MAC.rs2, [IP.rs3]: MAC.rs3, [IP.rs61]: MAC.rs61, [IP.rs62]: MAC.rs62,
      [IP.client]: MAC.client, [IP.client2]: MAC.client, [IP.client3]: MAC.client, [IP.client6]: MAC.client,
    },
    gw: opts.gw ? GW_MAC : undefined,
    mtu: opts.mtu,
    capacity: opts.capacity,
  });
}

/** Frame addressing for a client → director frame. */
export const fromClient = { srcMac: MAC.client, dstMac: MAC.dir } as const;
/** Frame addressing for a real server → director frame. */
export function fromRs(rsMac: string): { srcMac: string; dstMac: string } {
  return { srcMac: rsMac, dstMac: MAC.dir };
}

export interface Decoded {
  rc: number;
  dstMac: string;
  srcMac: string;
  af: number;
  proto: number;
  saddr: string;
  daddr: string;
  sport: number;
  dport: number;
  ttl: number;
  tcpFlags: number;
  df: boolean;
  /** IPv4 identification (0 for IPv6). */
  ipId: number;
  ipLen: number;
  /** Raw L4 checksum field (TCP/UDP 16 bits, SCTP 32 bits), -1 when absent. */
  l4Csum: number;
  icmpType: number;
  icmpCode: number;
  innerSaddr: string;
  innerDaddr: string;
  innerSport: number;
  innerDport: number;
  innerProto: number;
  l3Off: number;
  l4Off: number;
}

export function addrText(af: number, w: Uint32Array): string {
  return af === 6 ? formatIp6(w[0]!, w[1]!, w[2]!, w[3]!) : formatIp4(w[0]!);
}

/** Decodes a frame with our parser (throws if it does not parse: every output frame must). */
export function decode(frame: Uint8Array): Decoded {
  const info = new PacketInfo();
  const rc = parseFrame(frame, 0, frame.length, info);
  if (rc !== PARSE_OK) throw new Error(`output frame does not parse (${rc})`);
  let l4Csum = -1;
  if (info.l4Off >= 0) {
    if (info.proto === 6 && info.l4Len >= 18) l4Csum = rd16(frame, info.l4Off + 16);
    else if (info.proto === 17 && info.l4Len >= 8) l4Csum = rd16(frame, info.l4Off + 6);
    else if (info.proto === 132 && info.l4Len >= 12) l4Csum = rd32(frame, info.l4Off + 8);
  }
  return {
    rc,
    dstMac: formatMac(frame, 0),
    srcMac: formatMac(frame, 6),
    af: info.af,
    proto: info.proto,
    saddr: addrText(info.af, info.saddr),
    daddr: addrText(info.af, info.daddr),
    sport: info.sport,
    dport: info.dport,
    ttl: info.ttl,
    tcpFlags: info.tcpFlags,
    df: info.df,
    ipId: info.af === 4 ? rd16(frame, info.l3Off + 4) : 0,
    ipLen: info.ipLen,
    l4Csum,
    icmpType: info.icmpType,
    icmpCode: info.icmpCode,
    innerSaddr: info.innerL3Off >= 0 ? addrText(info.af, info.innerSaddr) : '',
    innerDaddr: info.innerL3Off >= 0 ? addrText(info.af, info.innerDaddr) : '',
    innerSport: info.innerSport,
    innerDport: info.innerDport,
    innerProto: info.innerProto,
    l3Off: info.l3Off,
    l4Off: info.l4Off,
  };
}

/** Offsets where two frames differ (lengths must match, else the shorter length ends the list with -1). */
export function diffOffsets(a: Uint8Array, b: Uint8Array): number[] {
  const out: number[] = [];
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) out.push(i);
  if (a.length !== b.length) out.push(-1);
  return out;
}

/** The one output frame of a step (asserting there is exactly one is the caller's job). */
export function only(s: Step): Uint8Array {
  if (s.out.length !== 1) throw new Error(`expected one output frame, got ${s.out.length} (${s.verdict}/${s.reason})`);
  return s.out[0]!;
}

/** A compact view of a step for t.same: verdict, reason, number of frames out. */
export function outcome(s: Step): { verdict: string; reason: string; frames: number } {
  return { verdict: s.verdict, reason: s.reason, frames: s.out.length };
}

/** The IP packet inside an Ethernet frame (untagged), as a view. */
export function l3Of(frame: Uint8Array): Uint8Array {
  return frame.subarray(14);
}

/** Wraps an IP packet in an Ethernet header (for handing decapsulated inner packets to tshark). */
export function ethWrap(ip: Uint8Array, dstMac = MAC.rs1, srcMac = MAC.dir): Uint8Array {
  const f = new Uint8Array(14 + ip.length);
  const d = dstMac.split(':').map((x) => parseInt(x, 16));
  const s = srcMac.split(':').map((x) => parseInt(x, 16));
  f.set(d, 0);
  f.set(s, 6);
  const v = ip[0]! >>> 4;
  f[12] = v === 6 ? 0x86 : 0x08;
  f[13] = v === 6 ? 0xdd : 0x00;
  f.set(ip, 14);
  return f;
}

// ---------------------------------------------------------------------------------------------
// tshark as the independent judge, one run per test file.


interface JudgeItem {
  label: string;
  frame: Uint8Array;
  expect: Record<string, string | string[]>;
  verified: string[];
  staleQuoted: string | undefined;
}


/** Checksums that must be present and good by default: IPv4 header and the frame's own L4. */
function defaultVerified(frame: Uint8Array): string[] {
  const d = decode(frame);
  const v: string[] = [];
  if (d.af === 4) v.push('ip');
  if (d.proto === 6) v.push('tcp');
  else if (d.proto === 17) v.push('udp');
  else if (d.proto === 132) v.push('sctp');
  else if (d.proto === 1) v.push('icmp');
  else if (d.proto === 58) v.push('icmpv6');
  else if (d.proto === 47) v.push('gre');
  return v;
}

/**
 * Collects output frames with the tshark fields they must show; `register` dissects them all in one
 * tshark run and checks, per frame: no expert problem (bad checksum, malformed), no bad checksum
 * anywhere (outer or quoted), the listed checksums present and verified good, and every field.
 * A field expectation is the first occurrence (string) or all occurrences (array).
 */
export class Judge {
  private readonly items: JudgeItem[] = [];

  /**
   * `staleQuoted`: the L4 protocol ('udp', 'tcp') of a quoted packet whose checksum cannot
   * verify: ICMP NAT rewrites quoted addresses and ports but, like the kernel's ip_vs_nat_icmp,
   * leaves the quoted transport checksum alone; and an error quoting only the first 548 bytes
   * of a segment lets tshark sum a partial segment. tshark must then report exactly that one
   * checksum as bad and nothing else (the callers check those bytes themselves).
   */
  add(label: string, frame: Uint8Array, expect: Record<string, string | string[]> = {}, verified?: string[], staleQuoted?: string): void {
    this.items.push({ label, frame: frame.slice(), expect, verified: verified ?? defaultVerified(frame), staleQuoted });
  }

  /** Registers the tshark subtest (call once, last). `extra`: more tshark arguments. */
  register(t: Test, extra: string[] = []): void {
    t.test('tshark (checksum validation on) judges every output frame', tsharkTestOptions(), async (tt) => {
      if (tsharkMissing(tt)) return;
      const fields = new Set<string>();
      for (const it of this.items) for (const k of Object.keys(it.expect)) fields.add(k);
      const rows: DissectedFrame[] = dissect(this.items.map((i) => i.frame), [...fields], extra);
      tt.equal(rows.length, this.items.length, 'one row per frame');
      this.items.forEach((it, i) => {
        const r = rows[i];
        if (r === undefined) return;
        let problems = r.problems;
        if (it.staleQuoted !== undefined) {
          const k = problems.findIndex((m) => m.startsWith('Bad checksum'));
          if (k >= 0) problems = problems.filter((_m, j) => j !== k);
        }
        tt.same(problems, [], `${it.label}: no warnings/errors`);
        tt.same(badChecksums(r), it.staleQuoted !== undefined ? [`${it.staleQuoted}#0`] : [],
          it.staleQuoted !== undefined ? `${it.label}: only the quoted ${it.staleQuoted} checksum does not verify` : `${it.label}: no bad checksum`);
        for (const p of it.verified) {
          const st = r.checksums[p] ?? [];
          tt.equal(st[0], '1', `${it.label}: ${p} checksum verified good`);
        }
        for (const [k, v] of Object.entries(it.expect)) {
          if (Array.isArray(v)) tt.same(r.all(k), v, `${it.label}: ${k}`);
          else tt.equal(r.one(k), v, `${it.label}: ${k}`);
        }
      });
    });
  }
}
