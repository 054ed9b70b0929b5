import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildArp, buildIcmp, buildIcmpEcho, buildIcmpError, buildSctp, buildTcp, buildUdp, buildUdpFragments,
  fragmentFrame, ipPacketOf,
} from '../../src/packet/build.js';
import { rd16 } from '../../src/packet/bytes.js';
import { ipv4HeaderChecksumOk, l4ChecksumOkInfo } from '../../src/packet/checksum.js';
import { PacketInfo, PARSE_OK } from '../../src/packet/info.js';
import { parseFrame } from '../../src/packet/parse.js';

const V6 = { saddr: '2001:db8::1', daddr: '2001:db8::2' };

function parsed(f: Uint8Array): PacketInfo {
  const info = new PacketInfo();
  if (parseFrame(f, 0, f.length, info) !== PARSE_OK) throw new Error('parse failed');
  return info;
}

function pcap(frames: Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeUInt32LE(65535, 16);
  gh.writeUInt32LE(1, 20); // Ethernet
  parts.push(gh);
  frames.forEach((f, i) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(i, 0);
    h.writeUInt32LE(f.length, 8);
    h.writeUInt32LE(f.length, 12);
    parts.push(h, Buffer.from(f));
  });
  return Buffer.concat(parts);
}

const haveTshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;

/** Runs tshark with checksum validation on and returns one record of the requested fields per frame. */
function tshark(frames: Uint8Array[], fields: string[]): Array<Record<string, string>> {
  const dir = mkdtempSync(join(tmpdir(), 'ulvs-build-'));
  try {
    const file = join(dir, 'f.pcap');
    writeFileSync(file, pcap(frames));
    const r = spawnSync('tshark', [
      '-r', file, '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE',
      '-o', 'sctp.checksum:CRC-32C', '-T', 'fields', '-E', 'separator=/t', ...fields.flatMap((f) => ['-e', f]),
    ], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`tshark failed: ${r.stderr}`);
    return r.stdout.trimEnd().split('\n').map((line) => {
      const cols = line.split('\t');
      return Object.fromEntries(fields.map((f, i) => [f, cols[i] ?? '']));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Wireshark checksum status: 0 bad, 1 good, 2 unverified.
const STATUS = ['ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'sctp.checksum.status',
  'icmp.checksum.status', 'icmpv6.checksum.status'];

t.test('tshark agrees: every builder emits correct checksums and the fields asked for', { skip: !haveTshark && 'tshark not installed' }, async (t) => {
  const tcp = buildTcp({ payload: 'x'.repeat(100), df: true });
  const udp6 = buildUdp({ ...V6, dport: 9999, payload: 'y'.repeat(50) });
  const cases: Array<[string, Uint8Array, Record<string, string>]> = [
    ['tcp4', buildTcp({ sport: 1234, dport: 8080, flags: 0x18, seq: 1000, ack: 2000, payload: 'hello', ttl: 33, tos: 0x10 }),
      { 'tcp.srcport': '1234', 'tcp.dstport': '8080', 'tcp.flags': '0x0018', 'tcp.seq_raw': '1000', 'tcp.ack_raw': '2000', 'ip.ttl': '33', 'ip.dsfield': '0x10' }],
    ['tcp4-opts-vlan', buildTcp({ vlan: 77, ipOptions: Uint8Array.of(1, 1, 1, 1), tcpOptions: Uint8Array.of(2, 4, 5, 0xb4) }),
      { 'vlan.id': '77', 'ip.hdr_len': '24', 'tcp.options.mss_val': '1460' }],
    ['tcp6', buildTcp({ ...V6, payload: 'hello', ttl: 9 }), { 'ipv6.hlim': '9', 'ipv6.src': '2001:db8::1' }],
    ['udp4', buildUdp({ sport: 5000, dport: 9999, payload: 'abc' }), { 'udp.length': '11' }],
    ['udp6-ext', buildUdp({ ...V6, dport: 9999, ipv6Ext: [{ type: 0 }, { type: 60, len: 16 }] }), { 'udp.dstport': '9999' }],
    ['sctp-init', buildSctp({ initTag: 0x11111111 }), { 'sctp.chunk_type': '1', 'sctp.verification_tag': '0x00000000', 'sctp.init_initiate_tag': '0x11111111' }],
    ['sctp-init-ack', buildSctp({ chunk: 'init-ack', vtag: 0x11111111 }), { 'sctp.chunk_type': '2', 'sctp.verification_tag': '0x11111111' }],
    ['sctp-data', buildSctp({ family: 6, chunk: 'data', payload: 'abc', tsn: 77 }), { 'sctp.chunk_type': '0', 'sctp.data_tsn_raw': '77' }],
    ['sctp-abort', buildSctp({ chunk: 'abort' }), { 'sctp.chunk_type': '6' }],
    ['sctp-sack', buildSctp({ chunk: 'sack' }), { 'sctp.chunk_type': '3' }],
    ['sctp-shutdown', buildSctp({ chunk: 'shutdown' }), { 'sctp.chunk_type': '7' }],
    ['sctp-cookie-echo', buildSctp({ chunk: 'cookie-echo' }), { 'sctp.chunk_type': '10' }],
    ['icmp-echo', buildIcmpEcho({ echoId: 7, echoSeq: 9, payload: 'ping' }), { 'icmp.type': '8', 'icmp.ident': '7', 'icmp.seq': '9' }],
    ['icmp6-echo-reply', buildIcmpEcho({ ...V6, reply: true }), { 'icmpv6.type': '129' }],
    ['icmp-frag-needed', buildIcmpError({ saddr: '10.0.0.254', daddr: '10.0.0.1', original: ipPacketOf(tcp), icmpType: 3, icmpCode: 4, mtu: 1400 }),
      { 'icmp.type': '3', 'icmp.code': '4', 'icmp.mtu': '1400' }],
    ['icmp6-too-big', buildIcmpError({ saddr: '2001:db8::fe', daddr: '2001:db8::1', original: ipPacketOf(udp6), icmpType: 2, mtu: 1280 }),
      { 'icmpv6.type': '2', 'icmpv6.mtu': '1280' }],
    ['icmp6-ns', buildIcmp({ saddr: 'fe80::1', daddr: 'ff02::1:ff00:2', ttl: 255, icmpType: 135, body: new Uint8Array(16) }),
      { 'icmpv6.type': '135' }],
    ['arp-request', buildArp({ senderIp: '10.0.0.1', targetIp: '10.0.0.100' }),
      { 'arp.opcode': '1', 'arp.src.proto_ipv4': '10.0.0.1', 'arp.dst.proto_ipv4': '10.0.0.100', 'eth.dst': 'ff:ff:ff:ff:ff:ff' }],
    ['arp-reply', buildArp({ op: 'reply', senderMac: '02:00:00:00:00:aa', senderIp: '10.0.0.100', targetIp: '10.0.0.1', padTo: 60 }),
      { 'arp.opcode': '2', 'arp.src.hw_mac': '02:00:00:00:00:aa', 'frame.len': '60' }],
  ];
  const frags = buildUdpFragments({ dport: 9999, payload: 'z'.repeat(40), fragSize: 16 });
  const frags6 = buildUdpFragments({ ...V6, dport: 9999, payload: 'z'.repeat(40), fragSize: 24 });
  const frames = [...cases.map((c) => c[1]), ...frags, ...frags6];
  const extra = [...new Set(cases.flatMap((c) => Object.keys(c[2])))];
  const rows = tshark(frames, [...STATUS, '_ws.expert.message', 'udp.length', ...extra]);
  t.equal(rows.length, frames.length);
  cases.forEach(([name, , want], i) => {
    const r = rows[i]!;
    for (const s of STATUS) {
      // Quoted headers add a second, unverified value: only the first one is the frame's own.
      const first = r[s]!.split(',')[0]!;
      if (first !== '') t.equal(first, '1', `${name}: ${s}`);
    }
    t.notMatch(r['_ws.expert.message'], /Malformed|Bad checksum/i, `${name}: no malformed/bad-checksum warnings`);
    for (const [k, v] of Object.entries(want)) t.equal(r[k]!.split(',')[0], v, `${name}: ${k}`);
  });
  // The last fragment carries the reassembled UDP datagram, whose checksum tshark verifies.
  const last4 = rows[cases.length + frags.length - 1]!;
  t.equal(last4['udp.checksum.status'], '1', 'reassembled IPv4 UDP checksum');
  t.equal(last4['udp.length'], '48');
  const last6 = rows[rows.length - 1]!;
  t.equal(last6['udp.checksum.status'], '1', 'reassembled IPv6 UDP checksum');
});

t.test('tshark sees partial and bad L4 checksums as bad', { skip: !haveTshark && 'tshark not installed' }, async (t) => {
  const frames = [
    buildTcp({ l4Checksum: 'partial', payload: 'abc' }), buildUdp({ family: 6, l4Checksum: 'partial', dport: 9999 }),
    buildTcp({ l4Checksum: 'bad' }), buildSctp({ l4Checksum: 'bad' }),
  ];
  const rows = tshark(frames, ['tcp.checksum.status', 'udp.checksum.status', 'sctp.checksum.status', 'ip.checksum.status']);
  t.same(rows.map((r) => r['tcp.checksum.status'] || r['udp.checksum.status'] || r['sctp.checksum.status']), ['0', '0', '0', '0']);
  t.same(rows.map((r) => r['ip.checksum.status']), ['1', '', '1', '1'], 'the IPv4 header stays valid');
});

t.test('defaults and options', async (t) => {
  const f = buildTcp();
  const i = parsed(f);
  t.equal(f.length, 54, 'Ethernet + IPv4 + TCP, nothing else');
  t.same([...f.subarray(0, 12)], [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1], 'dst then src MAC');
  t.equal(i.saddr[0], 0x0a000001);
  t.equal(i.daddr[0], 0x0a000002);
  t.equal(i.sport, 12345);
  t.equal(i.dport, 80);
  t.equal(i.tcpFlags, 0x02, 'SYN');
  t.equal(i.ttl, 64);
  t.equal(i.df, false);
  t.ok(ipv4HeaderChecksumOk(f, 14));
  t.ok(l4ChecksumOkInfo(f, i));
  t.equal(parsed(buildUdp({ family: 6 })).af, 6);
  t.equal(parsed(buildUdp({ daddr: 'fd00::9' })).saddr[0], 0x20010db8, 'the missing address follows the family of the given one');
  t.same(buildUdp({ srcMac: Uint8Array.of(1, 2, 3, 4, 5, 6) }).subarray(6, 12), Uint8Array.of(1, 2, 3, 4, 5, 6));
  t.equal(buildUdp({ padTo: 60 }).length, 60);
  t.throws(() => buildUdp({ saddr: '10.0.0.1', daddr: '::1' }), /famil/);
  t.throws(() => buildUdp({ saddr: 'nope' }), /bad IP/);
  t.throws(() => buildUdp({ srcMac: 'xx' }), /bad MAC/);
  t.throws(() => buildUdp({ payload: new Uint8Array(70_000) }), /65535/);
});

t.test('fragments reassemble to the original datagram', async (t) => {
  for (const o of [{}, V6, { ipOptions: Uint8Array.of(1, 1, 1, 1), vlan: 3 }]) {
    const whole = buildUdp({ ...o, payload: 'The quick brown fox jumps over the lazy dog' });
    const wi = parsed(whole);
    const frags = fragmentFrame(whole, 16);
    t.equal(frags.length, Math.ceil(wi.l4Len / 16));
    const data: number[] = [];
    let expectOff = 0;
    frags.forEach((f, k) => {
      const i = parsed(f);
      t.equal(i.fragOff, expectOff, 'contiguous offsets');
      t.equal(i.moreFrags, k < frags.length - 1, 'MF on all but the last');
      if (i.af === 4) t.ok(ipv4HeaderChecksumOk(f, i.l3Off));
      const start = i.l3Off + i.l3HdrLen;
      data.push(...f.subarray(start, i.l3Off + i.ipLen));
      expectOff += i.l3Off + i.ipLen - start;
    });
    t.same(Uint8Array.from(data), whole.subarray(wi.l4Off, wi.l4Off + wi.l4Len));
  }
  t.throws(() => buildUdpFragments({ fragSize: 12 }), /multiple of 8/);
});

t.test('ICMP errors quote at most the Linux limits by default', async (t) => {
  const big4 = ipPacketOf(buildUdp({ payload: new Uint8Array(1400) }));
  const e4 = parsed(buildIcmpError({ original: big4, icmpType: 11 }));
  t.equal(e4.ipLen, 576, 'IPv4: 576 bytes in all');
  const big6 = ipPacketOf(buildUdp({ ...V6, payload: new Uint8Array(1400) }));
  const e6 = parsed(buildIcmpError({ ...V6, original: big6, icmpType: 3 }));
  t.equal(e6.ipLen, 1280, 'IPv6: 1280 bytes in all');
  t.throws(() => buildIcmpError({ original: big4, icmpType: 11, mtu: 1000 }), /mtu/);
  t.equal(rd16(ipPacketOf(buildUdp({ padTo: 80 })), 2), 28, 'ipPacketOf drops padding');
  t.equal(ipPacketOf(buildUdp({ padTo: 80 })).length, 28);
});
