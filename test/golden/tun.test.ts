/**
 * Golden packets, tunnelling through process(): --tun-type ipip, gue (--tun-port, nocsum/csum)
 * and gre (nocsum/csum). The outer header is checked field by field against what the kernel
 * writes (ip_vs_tunnel_xmit: source = the director's address, TTL = inner TTL after the
 * decrement, DF copied with pmtu_disc=1 and then ID 0, DS field with the ECN rule), the inner
 * packet must be the client's packet with only its TTL decremented. tshark dissects IPIP and
 * GRE itself; GUE (not dissected by tshark 4.0) is judged as UDP and its inner packet is handed
 * to tshark separately.
 */
import t, { type Test } from 'tap';
import { buildTcp, buildUdp } from '../../src/packet/build.js';
import { rd16, rd32 } from '../../src/packet/bytes.js';
import { ipv4HeaderChecksumOk } from '../../src/packet/checksum.js';
import { parseIp } from '../../src/util/ip.js';
import {
  DIR_IP, IP, MAC, Judge, TCP_SYN, decode, director, ethWrap, fromClient, only, outcome,
} from './helpers.js';

const judge = new Judge();
const GUE_PORT = 6080;

function addrWords(text: string): number[] {
  const a = parseIp(text)!;
  return [a.w0, a.w1, a.w2, a.w3];
}

const RULES = `-A -t ${IP.vip}:80 -s rr
-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -i -w 1
-A -t ${IP.vip}:81 -s rr
-a -t ${IP.vip}:81 -r ${IP.rs1}:81 -i --tun-type gue --tun-port ${GUE_PORT} --tun-nocsum -w 1
-A -t ${IP.vip}:82 -s rr
-a -t ${IP.vip}:82 -r ${IP.rs2}:82 -i --tun-type gue --tun-port ${GUE_PORT} --tun-csum -w 1
-A -t ${IP.vip}:83 -s rr
-a -t ${IP.vip}:83 -r ${IP.rs2}:83 -i --tun-type gre --tun-nocsum -w 1
-A -t ${IP.vip}:84 -s rr
-a -t ${IP.vip}:84 -r ${IP.rs3}:84 -i --tun-type gre --tun-csum -w 1
-A -u [${IP.vip6}]:5000 -s rr
-a -u [${IP.vip6}]:5000 -r ${IP.rs3}:5000 -i -w 1
-A -t ${IP.vip}:85 -s rr
-a -t ${IP.vip}:85 -r [${IP.rs62}]:85 -i -w 1
`;

const DIR_IP6 = '2001:db8:d::1';

interface Outer {
  ethDst: string;
  saddr: string;
  daddr: string;
  proto: number;
  ttl: number;
  tos: number;
  df: boolean;
  id: number;
  totLen: number;
  headerOk: boolean;
  /** Offset of what follows the outer IPv4 header. */
  next: number;
}

function outerOf(f: Uint8Array): Outer {
  const d = decode(f);
  t.equal(d.af, 4, 'outer is IPv4');
  return {
    ethDst: d.dstMac, saddr: d.saddr, daddr: d.daddr, proto: d.proto, ttl: d.ttl, tos: f[15]!, df: d.df,
    id: rd16(f, 18), totLen: rd16(f, 16), headerOk: ipv4HeaderChecksumOk(f, 14), next: 14 + ((f[14]! & 15) << 2),
  };
}

/** The inner IP packet must be the client's, with the TTL decremented (and, IPv4, the header checksum fixed). */
function checkInner(tt: Test, name: string, sent: Uint8Array, inner: Uint8Array): void {
  const orig = sent.subarray(14);
  tt.equal(inner.length, orig.length, `${name}: inner length`);
  const v4 = (orig[0]! >>> 4) === 4;
  const ttlAt = v4 ? 8 : 7;
  tt.equal(inner[ttlAt], orig[ttlAt]! - 1, `${name}: inner TTL decremented`);
  const skip = new Set(v4 ? [8, 10, 11] : [7]);
  const diff: number[] = [];
  for (let i = 0; i < orig.length; i++) if (!skip.has(i) && inner[i] !== orig[i]) diff.push(i);
  tt.same(diff, [], `${name}: inner packet otherwise unchanged`);
}

t.test('IPIP: IPv4 in IPv4, outer header as the kernel writes it', async (t) => {
  const td = director();
  await td.rules(RULES);
  const cases = [
    { name: 'DF set', o: { df: true, tos: 0x2b, ttl: 20 } }, // DSCP 10 + CE: CE becomes ECT(0) outside
    { name: 'DF clear', o: { df: false, tos: 0x01, ttl: 64 } },
  ];
  let lastId = -1;
  for (const c of cases) {
    const f = buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000 + c.o.ttl, dport: 80, flags: TCP_SYN, ...c.o });
    const s = td.send(f);
    t.same(outcome(s), { verdict: 'forward', reason: 'tunnel', frames: 1 }, c.name);
    const o = only(s);
    const out = outerOf(o);
    t.same([out.ethDst, out.saddr, out.daddr, out.proto], [MAC.rs1, DIR_IP, IP.rs1, 4], `${c.name}: to the RS from the director, protocol 4`);
    t.equal(out.ttl, c.o.ttl - 1, `${c.name}: outer TTL = inner TTL after the decrement`);
    t.equal(out.df, c.o.df, `${c.name}: DF copied (pmtu_disc=1)`);
    t.equal(out.tos, (c.o.tos & 3) === 3 ? (c.o.tos & 0xfc) | 2 : c.o.tos, `${c.name}: DS field with the ECN rule`);
    if (c.o.df) t.equal(out.id, 0, 'DF set: IP ID 0');
    else lastId = out.id;
    t.equal(out.totLen, 20 + decode(f).ipLen, 'outer length = 20 + inner');
    t.ok(out.headerOk, 'outer header checksum');
    checkInner(t, c.name, f, o.subarray(out.next));
    judge.add(`IPIP ${c.name}`, o, {
      'ip.src': [DIR_IP, IP.client], 'ip.dst': [IP.rs1, IP.vip], 'ip.proto': ['4', '6'],
      'ip.ttl': [String(c.o.ttl - 1), String(c.o.ttl - 1)], 'tcp.dstport': '80',
    }, ['ip', 'tcp']);
  }
  // Without DF the ID comes from a counter: the next one differs.
  const f2 = buildTcp({ ...fromClient, saddr: IP.client2, daddr: IP.vip, sport: 41000, dport: 80, flags: TCP_SYN });
  const id2 = outerOf(only(td.send(f2))).id;
  t.not(id2, lastId, 'consecutive outer IDs differ');
});

t.test('IPIP: IPv6 service with an IPv4 tunnel real server (protocol 41)', async (t) => {
  const td = director();
  await td.rules(RULES);
  const f = buildUdp({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 40000, dport: 5000, payload: 'six-in-four', ttl: 9 });
  const s = td.send(f);
  t.same(outcome(s), { verdict: 'forward', reason: 'tunnel', frames: 1 });
  const o = only(s);
  const out = outerOf(o);
  t.same([out.saddr, out.daddr, out.proto, out.ttl, out.df, out.ethDst], [DIR_IP, IP.rs3, 41, 8, false, MAC.rs3]);
  checkInner(t, '6in4', f, o.subarray(out.next));
  judge.add('IPIP 6in4', o, { 'ip.src': DIR_IP, 'ip.dst': IP.rs3, 'ip.proto': '41', 'ipv6.dst': IP.vip6, 'ipv6.hlim': '8', 'udp.dstport': '5000' }, ['ip', 'udp']);
});

t.test('GUE: UDP to --tun-port, source port in the ephemeral range, GUE header, checksum off/on', async (t) => {
  const td = director();
  await td.rules(RULES);
  for (const [vport, rs, rsMac, csum] of [[81, IP.rs1, MAC.rs1, false], [82, IP.rs2, MAC.rs2, true]] as const) {
    const name = csum ? 'GUE --tun-csum' : 'GUE --tun-nocsum';
    const f = buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 42000, dport: vport, flags: TCP_SYN, df: true, payload: 'gue' });
    const s = td.send(f);
    t.same(outcome(s), { verdict: 'forward', reason: 'tunnel', frames: 1 }, name);
    const o = only(s);
    const out = outerOf(o);
    t.same([out.saddr, out.daddr, out.proto, out.ethDst, out.df, out.id], [DIR_IP, rs, 17, rsMac, true, 0], `${name}: outer IPv4/UDP, DF copied, ID 0`);
    const u = out.next;
    const sport = rd16(o, u);
    t.ok(sport >= 32768 && sport < 61000, `${name}: source port ${sport} in ip_local_port_range`);
    t.equal(rd16(o, u + 2), GUE_PORT, `${name}: destination port = --tun-port`);
    t.equal(rd16(o, u + 4), 8 + 4 + decode(f).ipLen, `${name}: UDP length`);
    const ucsum = rd16(o, u + 6);
    if (csum) t.not(ucsum, 0, `${name}: UDP checksum present`);
    else t.equal(ucsum, 0, `${name}: no UDP checksum`);
    t.equal(rd32(o, u + 8), 0x00040000, `${name}: GUE version 0, C 0, hlen 0, proto 4, flags 0`);
    const inner = o.subarray(u + 12);
    checkInner(t, name, f, inner);
    // Same flow, same source port.
    const again = only(td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 42000, dport: vport, flags: 0x10, df: true })));
    t.equal(rd16(again, u), sport, `${name}: a flow keeps its source port`);
    judge.add(name, o, { 'ip.src': DIR_IP, 'ip.dst': rs, 'udp.dstport': String(GUE_PORT), 'udp.srcport': String(sport) },
      csum ? ['ip', 'udp'] : ['ip']);
    judge.add(`${name} (inner, decapsulated)`, ethWrap(inner), { 'ip.src': IP.client, 'ip.dst': IP.vip, 'tcp.dstport': String(vport), 'ip.ttl': '63' });
  }
});

t.test('GRE: base header, protocol 0x0800, checksum off/on', async (t) => {
  const td = director();
  await td.rules(RULES);
  for (const [vport, rs, csum] of [[83, IP.rs2, false], [84, IP.rs3, true]] as const) {
    const name = csum ? 'GRE --tun-csum' : 'GRE --tun-nocsum';
    const f = buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 43000, dport: vport, flags: TCP_SYN, payload: 'gre!' });
    const s = td.send(f);
    t.same(outcome(s), { verdict: 'forward', reason: 'tunnel', frames: 1 }, name);
    const o = only(s);
    const out = outerOf(o);
    t.same([out.saddr, out.daddr, out.proto, out.totLen], [DIR_IP, rs, 47, 20 + (csum ? 8 : 4) + decode(f).ipLen], `${name}: outer header`);
    const g = out.next;
    t.equal(rd16(o, g), csum ? 0x8000 : 0, `${name}: C bit ${csum ? 'set' : 'clear'}, version 0`);
    t.equal(rd16(o, g + 2), 0x0800, `${name}: protocol IPv4`);
    checkInner(t, name, f, o.subarray(g + (csum ? 8 : 4)));
    judge.add(name, o, {
      'ip.src': [DIR_IP, IP.client], 'ip.dst': [rs, IP.vip], 'gre.proto': '0x0800',
      'gre.flags.checksum': csum ? '1' : '0', 'tcp.dstport': String(vport),
    }, csum ? ['ip', 'gre', 'tcp'] : ['ip', 'tcp']);
  }
});

t.test('tunnel listing shows the tunnel options', async (t) => {
  const td = director();
  await td.rules(RULES);
  const s = await td.ipvsadm('-S', '-n');
  t.match(s.out, new RegExp(`-a -t ${IP.vip.replace(/\./g, '\\.')}:81 -r ${IP.rs1.replace(/\./g, '\\.')}:81 -i -w 1 --tun-type gue --tun-port ${GUE_PORT} --tun-nocsum`));
  t.match(s.out, /:84 -i -w 1 --tun-type gre --tun-csum/);
});



t.test('802.1Q: the encapsulated frame keeps the VLAN of the packet it carries, per packet', async (t) => {
  const td = director();
  await td.rules(RULES);
  for (const vlan of [10, 20, 10]) {
    const f = buildTcp({ ...fromClient, vlan, saddr: IP.client, daddr: IP.vip, sport: 44000 + vlan, dport: 80, flags: TCP_SYN });
    const o = only(td.send(f));
    t.same([rd16(o, 12), rd16(o, 14) & 0xfff, rd16(o, 16)], [0x8100, vlan, 0x0800], `VLAN ${vlan} in, VLAN ${vlan} out`);
  }
});
t.test('IPv4 in IPv6 (an IPv6 tunnel real server): needs a director IPv6 address', async (t) => {
  const td = director();
  await td.rules(RULES);
  const f = () => buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 45000, dport: 85, flags: TCP_SYN, ttl: 30, tos: 0xb8 });
  t.same(outcome(td.send(f())), { verdict: 'drop', reason: 'no-source-address', frames: 0 },
    'no IPv6 address: no outer header with source :: (the kernel route lookup fails too)');
  td.d.engine.ip6.set(addrWords(DIR_IP6));
  const sent = f();
  const s = td.send(sent);
  t.same(outcome(s), { verdict: 'forward', reason: 'tunnel', frames: 1 });
  const o = only(s);
  t.equal(rd16(o, 12), 0x86dd, 'IPv6 outer');
  t.same([o[14]! >>> 4, ((o[14]! & 15) << 4) | (o[15]! >>> 4), rd32(o, 14) & 0xfffff, rd16(o, 18), o[20], o[21]],
    [6, 0xb8, 0, 20 + 20, 4, 29], 'version 6, traffic class = inner DS field, flow label 0, payload = inner, next header 4, hop limit = inner TTL after decrement');
  t.equal(decode(o).dstMac, MAC.rs62);
  checkInner(t, '4in6', sent, o.subarray(14 + 40));
  judge.add('IPIP 4in6', o, { 'ipv6.src': DIR_IP6, 'ipv6.dst': IP.rs62, 'ipv6.nxt': '4', 'ip.dst': IP.vip, 'tcp.dstport': '85' }, ['ip', 'tcp']);
});

judge.register(t);
