/**
 * Frame corpora for parser robustness tests, shared with the engine tests.
 * `xorshift32(seed)` is a tiny seeded PRNG (returns uint32s). `validFrames()` builds one frame of
 * every kind the builders make. `malformedFrames(opts)` yields broken frames (`CorpusFrame`:
 * name, frame and, when known, the PARSE_* codes a correct parser may return): every valid frame
 * truncated at every length, bad IPv4 IHL / total length / version, bad IPv6 payload length,
 * broken and very long IPv6 extension header chains, bad TCP data offsets, ICMP errors quoting
 * truncated headers, and `garbage` (default 10,000) seeded random frames (pure noise, mutated
 * valid frames, and random bytes behind valid Ethernet+IP headers).
 */
import {
  buildArp, buildIcmpEcho, buildIcmpError, buildSctp, buildTcp, buildUdp, buildUdpFragments, ipPacketOf,
} from '../../src/packet/build.js';
import { wr16 } from '../../src/packet/bytes.js';
import { setIpv4HeaderChecksum } from '../../src/packet/checksum.js';
import {
  PARSE_BAD_EXTHDR, PARSE_BAD_IHL, PARSE_BAD_IP_LEN, PARSE_BAD_IP_VERSION, PARSE_BAD_L4, PARSE_OK,
  PARSE_TRUNC_ARP, PARSE_TRUNC_ETH, PARSE_TRUNC_IP, PARSE_TRUNC_L4, PARSE_TRUNC_VLAN,
} from '../../src/packet/info.js';

export interface CorpusFrame {
  name: string;
  frame: Uint8Array;
  /** Acceptable parse results, when the case pins them down. */
  expect?: readonly number[];
}

/** xorshift32 (Marsaglia): deterministic uint32 stream; seed 0 is replaced by 1. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export function validFrames(): CorpusFrame[] {
  const v6 = { saddr: '2001:db8::1', daddr: '2001:db8::2' };
  const tcp4 = buildTcp({ payload: 'GET / HTTP/1.0\r\n\r\n', flags: 0x18 });
  const udp6 = buildUdp({ ...v6, payload: 'hello' });
  const list: CorpusFrame[] = [
    { name: 'tcp4', frame: tcp4 },
    { name: 'tcp4-vlan-opts', frame: buildTcp({ vlan: 42, ipOptions: Uint8Array.of(1, 1, 1, 1), tcpOptions: Uint8Array.of(2, 4, 5, 0xb4) }) },
    { name: 'tcp6', frame: buildTcp({ ...v6, payload: 'x' }) },
    { name: 'udp4', frame: buildUdp({ payload: 'abc' }) },
    { name: 'udp6', frame: udp6 },
    { name: 'udp6-ext', frame: buildUdp({ ...v6, ipv6Ext: [{ type: 0 }, { type: 43 }, { type: 60, len: 16 }, { type: 51 }] }) },
    { name: 'sctp4-init', frame: buildSctp({}) },
    { name: 'sctp4-data', frame: buildSctp({ chunk: 'data', payload: 'data!' }) },
    { name: 'sctp6-abort', frame: buildSctp({ ...v6, chunk: 'abort' }) },
    { name: 'icmp4-echo', frame: buildIcmpEcho({ payload: 'ping' }) },
    { name: 'icmp6-echo', frame: buildIcmpEcho({ ...v6, payload: 'ping' }) },
    { name: 'icmp4-frag-needed', frame: buildIcmpError({ saddr: '10.0.0.254', daddr: '10.0.0.1', original: ipPacketOf(tcp4), icmpType: 3, icmpCode: 4, mtu: 1400 }) },
    { name: 'icmp6-too-big', frame: buildIcmpError({ saddr: '2001:db8::fe', daddr: '2001:db8::1', original: ipPacketOf(udp6), icmpType: 2, mtu: 1280 }) },
    { name: 'arp-request', frame: buildArp({ senderIp: '10.0.0.1', targetIp: '10.0.0.100' }) },
    { name: 'arp-reply', frame: buildArp({ op: 'reply', senderIp: '10.0.0.100', targetIp: '10.0.0.1' }) },
  ];
  buildUdpFragments({ payload: 'f'.repeat(40), fragSize: 16 }).forEach((f, i) => list.push({ name: `udp4-frag${i}`, frame: f }));
  buildUdpFragments({ ...v6, payload: 'f'.repeat(40), fragSize: 16 }).forEach((f, i) => list.push({ name: `udp6-frag${i}`, frame: f }));
  return list;
}

function l3OffOf(f: Uint8Array): number {
  return f[12] === 0x81 && f[13] === 0 ? 18 : 14;
}

/** Expected codes for a frame cut to `len` bytes (none of the valid frames has Ethernet padding). */
function truncExpect(f: Uint8Array, len: number): readonly number[] {
  const l3 = l3OffOf(f);
  if (len < 14) return [PARSE_TRUNC_ETH];
  if (len < l3) return [PARSE_TRUNC_VLAN];
  const et = (f[l3 - 2]! << 8) | f[l3 - 1]!;
  if (et === 0x0806) return [PARSE_TRUNC_ARP];
  // IPv4 with options cut inside the header: the IHL points past the data.
  const avail = len - l3;
  if (et === 0x0800 && avail >= 20 && avail < (f[l3]! & 15) * 4) return [PARSE_BAD_IHL];
  return [PARSE_TRUNC_IP];
}

function copyWith(f: Uint8Array, edit: (g: Uint8Array) => void): Uint8Array {
  const g = f.slice();
  edit(g);
  return g;
}

export interface MalformedOptions {
  seed?: number;
  /** Number of random frames; default 10,000. */
  garbage?: number;
}

export function* malformedFrames(opts: MalformedOptions = {}): Generator<CorpusFrame> {
  const valid = validFrames();
  for (const v of valid) {
    for (let len = 0; len < v.frame.length; len++) {
      yield { name: `${v.name}/trunc${len}`, frame: v.frame.slice(0, len), expect: truncExpect(v.frame, len) };
    }
  }

  const tcp4 = buildTcp({ payload: 'abcdefgh' });
  const l3 = 14;
  for (let ihl = 0; ihl < 5; ihl++) {
    yield { name: `ipv4-ihl${ihl}`, frame: copyWith(tcp4, (g) => { g[l3] = 0x40 | ihl; }), expect: [PARSE_BAD_IHL] };
  }
  // IHL of 15 (60 bytes) on a packet whose frame holds fewer bytes.
  const tiny = buildUdp({});
  yield { name: 'ipv4-ihl15-short', frame: copyWith(tiny, (g) => { g[l3] = 0x4f; }), expect: [PARSE_BAD_IHL] };
  // 48 bytes of IP: 20 IP header + 20 TCP header + 8 payload.
  for (const tot of [0, 1, 19, 20, 39, 40, 49, 0xffff]) {
    const exp = tot < 20 ? PARSE_BAD_IP_LEN : tot > 48 ? PARSE_TRUNC_IP : tot < 40 ? PARSE_TRUNC_L4 : PARSE_OK;
    yield { name: `ipv4-totlen${tot}`, frame: copyWith(tcp4, (g) => { wr16(g, l3 + 2, tot); setIpv4HeaderChecksum(g, l3); }), expect: [exp] };
  }
  for (const ver of [0, 1, 5, 6, 15]) {
    yield { name: `ipv4-version${ver}`, frame: copyWith(tcp4, (g) => { g[l3] = (ver << 4) | 5; }), expect: [PARSE_BAD_IP_VERSION] };
  }
  for (const doff of [0, 1, 4, 6, 15]) {
    // 20-byte TCP header + 8 bytes payload: data offsets up to 7 words fit.
    const exp = doff < 5 || doff * 4 > 28 ? [PARSE_BAD_L4] : [PARSE_OK];
    yield { name: `tcp-doff${doff}`, frame: copyWith(tcp4, (g) => { g[l3 + 20 + 12] = doff << 4; }), expect: exp };
  }

  const udp6 = buildUdp({ saddr: '2001:db8::1', daddr: '2001:db8::2', payload: 'abcd' });
  for (const plen of [0, 7, 13, 100, 0xffff]) {
    const exp = plen > udp6.length - 54 ? [PARSE_TRUNC_IP] : [PARSE_TRUNC_L4, PARSE_OK];
    yield { name: `ipv6-plen${plen}`, frame: copyWith(udp6, (g) => { wr16(g, l3 + 4, plen); }), expect: exp };
  }
  yield { name: 'ipv6-version4', frame: copyWith(udp6, (g) => { g[l3] = 0x40; }), expect: [PARSE_BAD_IP_VERSION] };

  // Long but valid chains, and chains that run off the end.
  for (const n of [1, 8, 64, 200]) {
    const chain = buildUdp({ saddr: '2001:db8::1', daddr: '2001:db8::2', ipv6Ext: Array.from({ length: n }, () => ({ type: 60 as const })) });
    yield { name: `ipv6-dstopts-x${n}`, frame: chain, expect: [PARSE_OK] };
    // Cut the IPv6 payload length so the last extension header no longer fits.
    yield { name: `ipv6-dstopts-x${n}-cut`, frame: copyWith(chain, (g) => { wr16(g, l3 + 4, n * 8 - 4); }), expect: [PARSE_BAD_EXTHDR] };
  }
  yield {
    name: 'ipv6-hbh-not-first',
    frame: buildUdp({ saddr: '2001:db8::1', daddr: '2001:db8::2', ipv6Ext: [{ type: 60 }, { type: 0 }] }),
    expect: [PARSE_BAD_EXTHDR],
  };
  yield {
    name: 'ipv6-ext-len-overflow',
    frame: copyWith(buildUdp({ saddr: '2001:db8::1', daddr: '2001:db8::2', ipv6Ext: [{ type: 43 }] }), (g) => { g[l3 + 41] = 255; }),
    expect: [PARSE_BAD_EXTHDR],
  };
  yield {
    name: 'ipv6-ah-len-overflow',
    frame: copyWith(buildUdp({ saddr: '2001:db8::1', daddr: '2001:db8::2', ipv6Ext: [{ type: 51 }] }), (g) => { g[l3 + 41] = 200; }),
    expect: [PARSE_BAD_EXTHDR],
  };

  // ICMP errors quoting 0..n bytes of the offending packet: the outer frame is always fine.
  const inner4 = ipPacketOf(buildTcp({ ipOptions: Uint8Array.of(1, 1, 1, 1) }));
  const inner6 = ipPacketOf(buildUdp({ saddr: '2001:db8::1', daddr: '2001:db8::2', ipv6Ext: [{ type: 60 }] }));
  for (let q = 0; q <= 32; q++) {
    yield {
      name: `icmp4-quote${q}`,
      frame: buildIcmpError({ saddr: '10.0.0.254', daddr: '10.0.0.1', original: inner4, icmpType: 3, icmpCode: 1, quoteLimit: q }),
      expect: [PARSE_OK],
    };
  }
  for (let q = 0; q <= 60; q++) {
    yield {
      name: `icmp6-quote${q}`,
      frame: buildIcmpError({ saddr: '2001:db8::fe', daddr: '2001:db8::1', original: inner6, icmpType: 1, icmpCode: 4, quoteLimit: q }),
      expect: [PARSE_OK],
    };
  }

  yield* garbageFrames(opts.seed ?? 0x5eed, opts.garbage ?? 10_000, valid);
}

function* garbageFrames(seed: number, count: number, valid: CorpusFrame[]): Generator<CorpusFrame> {
  const rnd = xorshift32(seed);
  const ethTypes = [0x0800, 0x86dd, 0x0806, 0x8100];
  for (let i = 0; i < count; i++) {
    const kind = rnd() % 3;
    let f: Uint8Array;
    if (kind === 0) {
      // Noise, with a plausible EtherType most of the time so the IP/ARP paths are reached.
      f = new Uint8Array(rnd() % 160);
      for (let j = 0; j < f.length; j++) f[j] = rnd();
      if (f.length >= 14 && rnd() % 4 !== 0) wr16(f, 12, ethTypes[rnd() % 4]!);
    } else if (kind === 1) {
      // A valid frame with a few random bytes changed, sometimes cut short.
      const src = valid[rnd() % valid.length]!.frame;
      f = src.slice(0, rnd() % 5 === 0 ? rnd() % (src.length + 1) : src.length);
      const n = 1 + (rnd() % 4);
      for (let j = 0; j < n && f.length > 0; j++) f[rnd() % f.length] = rnd();
    } else {
      // Valid Ethernet + IP fixed header prefix, random remainder.
      const src = valid[rnd() % valid.length]!.frame;
      const keep = Math.min(src.length, l3OffOf(src) + (rnd() % 48));
      f = new Uint8Array(keep + (rnd() % 120));
      f.set(src.subarray(0, keep));
      for (let j = keep; j < f.length; j++) f[j] = rnd();
    }
    yield { name: `garbage${i}`, frame: f };
  }
}
