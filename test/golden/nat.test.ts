/**
 * Golden packets, NAT (masquerading) through process(): both directions for TCP, UDP (with and
 * without a UDP checksum) and SCTP (CRC32c), IPv4 and IPv6 services. Our decoder checks the
 * exact rewrite; tshark (checksum validation on) judges every output frame independently.
 */
import t from 'tap';
import { buildSctp, buildTcp, buildUdp } from '../../src/packet/build.js';
import { FRAME_CSUM_NOT_READY } from '../../src/io/batch.js';
import {
  IP, MAC, Judge, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, decode, diffOffsets, director, fromClient, fromRs, only, outcome,
} from './helpers.js';

const judge = new Judge();

const NAT_RULES = `-A -t ${IP.vip}:80 -s rr
-a -t ${IP.vip}:80 -r ${IP.rs1}:8080 -m -w 1
-A -u ${IP.vip}:5000 -s rr
-a -u ${IP.vip}:5000 -r ${IP.rs1}:5002 -m -w 1
--add-service --sctp-service ${IP.vip}:3868 -s rr
-a --sctp-service ${IP.vip}:3868 -r ${IP.rs1}:3869 -m -w 1
--add-service --sctp-service ${IP.vip}:2905 -s rr
-a --sctp-service ${IP.vip}:2905 -r ${IP.rs2}:2905 -m -w 1
-A -t [${IP.vip6}]:80 -s rr
-a -t [${IP.vip6}]:80 -r [${IP.rs61}]:8080 -m -w 1
-A -u [${IP.vip6}]:5000 -s rr
-a -u [${IP.vip6}]:5000 -r [${IP.rs61}]:5002 -m -w 1
--add-service --sctp-service [${IP.vip6}]:3868 -s rr
-a --sctp-service [${IP.vip6}]:3868 -r [${IP.rs61}]:3869 -m -w 1
`;

t.test('TCP over IPv4: a whole connection, DNAT in and SNAT out, listing follows the states', async (t) => {
  const td = director();
  await td.rules(NAT_RULES);
  const c = { ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 80 };
  const s = { ...fromRs(MAC.rs1), saddr: IP.rs1, daddr: IP.client, sport: 8080, dport: 40000 };
  const req = (o: object) => buildTcp({ ...c, ...o });
  const rep = (o: object) => buildTcp({ ...s, ...o });
  const exchange: [string, Uint8Array, 'in' | 'out'][] = [
    ['SYN', req({ flags: TCP_SYN, seq: 1000, ttl: 64, ipId: 0x1111 }), 'in'],
    ['SYN-ACK', rep({ flags: TCP_SYN | TCP_ACK, seq: 5000, ack: 1001, ttl: 64, ipId: 0x2222 }), 'out'],
    ['ACK+data', req({ flags: TCP_ACK | TCP_PSH, seq: 1001, ack: 5002, payload: 'GET / HTTP/1.0\r\n\r\n', ipId: 0x1112 }), 'in'],
    ['data', rep({ flags: TCP_ACK | TCP_PSH, seq: 5002, ack: 1019, payload: 'HTTP/1.0 200 OK\r\n\r\nhello', ipId: 0x2223 }), 'out'],
    ['client FIN', req({ flags: TCP_FIN | TCP_ACK, seq: 1019, ack: 5025, ipId: 0x1113 }), 'in'],
    ['server FIN', rep({ flags: TCP_FIN | TCP_ACK, seq: 5025, ack: 1020, ipId: 0x2224 }), 'out'],
    ['last ACK', req({ flags: TCP_ACK, seq: 1020, ack: 5026, ipId: 0x1114 }), 'in'],
  ];
  for (const [name, frame, dir] of exchange) {
    const st = td.send(frame);
    t.same(outcome(st), { verdict: 'forward', reason: dir === 'in' ? 'nat-in' : 'nat-out', frames: 1 }, name);
    const o = only(st);
    const before = decode(frame);
    const after = decode(o);
    if (dir === 'in') {
      t.same([after.saddr, after.sport, after.daddr, after.dport], [IP.client, 40000, IP.rs1, 8080], `${name}: DNAT to the real server`);
      t.same([after.dstMac, after.srcMac], [MAC.rs1, MAC.dir], `${name}: to the RS MAC from ours`);
    } else {
      t.same([after.saddr, after.sport, after.daddr, after.dport], [IP.vip, 80, IP.client, 40000], `${name}: SNAT back to the VIP`);
      t.same([after.dstMac, after.srcMac], [MAC.client, MAC.dir], `${name}: to the client MAC from ours`);
    }
    t.equal(after.ttl, before.ttl - 1, `${name}: TTL decremented`);
    t.equal(after.ipId, before.ipId, `${name}: IP ID kept`);
    t.equal(after.tcpFlags, before.tcpFlags, `${name}: flags kept`);
    t.same(o.subarray(after.l4Off + 4, after.l4Off + 16), frame.subarray(before.l4Off + 4, before.l4Off + 16), `${name}: seq/ack/offset/flags/window untouched`);
    t.same(o.subarray(after.l4Off + 20), frame.subarray(before.l4Off + 20), `${name}: payload untouched`);
    judge.add(`TCP4 ${name}`, o, dir === 'in'
      ? { 'ip.src': IP.client, 'ip.dst': IP.rs1, 'tcp.srcport': '40000', 'tcp.dstport': '8080', 'ip.ttl': String(before.ttl - 1) }
      : { 'ip.src': IP.vip, 'ip.dst': IP.client, 'tcp.srcport': '80', 'tcp.dstport': '40000', 'ip.ttl': String(before.ttl - 1) });
  }
  // Input FIN: ES→CLOSE_WAIT, output FIN: →TIME_WAIT, last ACK keeps TIME_WAIT (120 s).
  const lc = await td.ipvsadm('-L', '-n', '-c');
  t.match(lc.out, /\nTCP 02:00  TIME_WAIT   10\.0\.0\.1:40000 +10\.0\.0\.100:80 +10\.0\.1\.1:8080\n/);
  const st = await td.ipvsadm('-L', '-n', '--stats', '--exact', '-t', `${IP.vip}:80`);
  const row = st.out.split('\n').find((l) => l.includes('-> 10.0.1.1:8080'))!;
  const bytesIn = exchange.filter((e) => e[2] === 'in').reduce((n, e) => n + decode(e[1]).ipLen, 0);
  const bytesOut = exchange.filter((e) => e[2] === 'out').reduce((n, e) => n + decode(e[1]).ipLen, 0);
  t.same(row.trim().split(/\s+/).slice(2), ['1', '4', '3', String(bytesIn), String(bytesOut)], 'conns, packets and bytes (IP length) per direction');
});

t.test('UDP over IPv4: checksummed and checksum-less datagrams both leave with a full valid checksum', async (t) => {
  const td = director();
  await td.rules(NAT_RULES);
  for (const [name, mode] of [['checksum', 'valid'], ['zero checksum', 'zero']] as const) {
    const sport = mode === 'valid' ? 41000 : 41001;
    const q = buildUdp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport, dport: 5000, payload: 'query?', l4Checksum: mode });
    if (mode === 'zero') t.equal(decode(q).l4Csum, 0, 'input really has no checksum');
    const s1 = td.send(q);
    t.same(outcome(s1), { verdict: 'forward', reason: 'nat-in', frames: 1 }, `${name}: request`);
    const o1 = decode(only(s1));
    t.same([o1.daddr, o1.dport, o1.saddr, o1.sport], [IP.rs1, 5002, IP.client, sport]);
    t.not(o1.l4Csum, 0, `${name}: a checksum is computed (the kernel does not keep 0)`);
    judge.add(`UDP4 ${name} request`, only(s1), { 'ip.dst': IP.rs1, 'udp.dstport': '5002' });
    const r = buildUdp({ ...fromRs(MAC.rs1), saddr: IP.rs1, daddr: IP.client, sport: 5002, dport: sport, payload: 'answer!', l4Checksum: mode });
    const s2 = td.send(r);
    t.same(outcome(s2), { verdict: 'forward', reason: 'nat-out', frames: 1 }, `${name}: reply`);
    const o2 = decode(only(s2));
    t.same([o2.saddr, o2.sport, o2.daddr, o2.dport], [IP.vip, 5000, IP.client, sport]);
    t.not(o2.l4Csum, 0, `${name}: reply checksum computed`);
    judge.add(`UDP4 ${name} reply`, only(s2), { 'ip.src': IP.vip, 'udp.srcport': '5000' });
  }
  const lc = await td.ipvsadm('-L', '-n', '-c');
  t.match(lc.out, /\nUDP 05:00  UDP +10\.0\.0\.1:41000 +10\.0\.0\.100:5000 +10\.0\.1\.1:5002\n/, 'UDP conn, 300 s');
});

t.test('SCTP over IPv4: CRC32c recomputed when the port changes, kept when it does not', async (t) => {
  const td = director();
  await td.rules(NAT_RULES);
  const init = buildSctp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 50000, dport: 3868, chunk: 'init' });
  const s1 = td.send(init);
  t.same(outcome(s1), { verdict: 'forward', reason: 'nat-in', frames: 1 });
  const o1 = decode(only(s1));
  t.same([o1.daddr, o1.dport], [IP.rs1, 3869]);
  t.not(o1.l4Csum, decode(init).l4Csum, 'CRC changed with the port');
  judge.add('SCTP4 INIT (port 3868 → 3869)', only(s1), { 'ip.dst': IP.rs1, 'sctp.dstport': '3869', 'sctp.chunk_type': '1' });
  const ack = buildSctp({ ...fromRs(MAC.rs1), saddr: IP.rs1, daddr: IP.client, sport: 3869, dport: 50000, chunk: 'init-ack', vtag: 0x0a0b0c0d });
  const s2 = td.send(ack);
  t.same(outcome(s2), { verdict: 'forward', reason: 'nat-out', frames: 1 });
  const o2 = decode(only(s2));
  t.same([o2.saddr, o2.sport], [IP.vip, 3868]);
  judge.add('SCTP4 INIT-ACK (3869 → 3868)', only(s2), { 'ip.src': IP.vip, 'sctp.srcport': '3868', 'sctp.chunk_type': '2' });

  // Same port on both sides: only the address changes, which the CRC does not cover.
  const init2 = buildSctp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 50001, dport: 2905, chunk: 'init' });
  const s3 = td.send(init2);
  t.same(outcome(s3), { verdict: 'forward', reason: 'nat-in', frames: 1 });
  const out3 = only(s3);
  const o3 = decode(out3);
  t.equal(o3.l4Csum, decode(init2).l4Csum, 'CRC untouched');
  t.same(out3.subarray(o3.l4Off), init2.subarray(decode(init2).l4Off), 'SCTP packet byte-identical');
  judge.add('SCTP4 INIT same port', out3, { 'ip.dst': IP.rs2, 'sctp.dstport': '2905' });
  const lc = await td.ipvsadm('-L', '-n', '-c');
  t.match(lc.out, /\nSCTP \d\d:\d\d  [A-Z_-]+ +10\.0\.0\.1:50000 +10\.0\.0\.100:3868 +10\.0\.1\.1:3869\n/);
});

t.test('IPv6 services: TCP, UDP and SCTP both directions', async (t) => {
  const td = director();
  await td.rules(NAT_RULES);
  const cases = [
    { name: 'TCP6', build: buildTcp, vport: 80, dport: 8080, req: { flags: TCP_SYN }, rep: { flags: TCP_SYN | TCP_ACK }, field: 'tcp' },
    { name: 'UDP6', build: buildUdp, vport: 5000, dport: 5002, req: { payload: 'q' }, rep: { payload: 'a' }, field: 'udp' },
    { name: 'SCTP6', build: buildSctp, vport: 3868, dport: 3869, req: { chunk: 'init' }, rep: { chunk: 'init-ack', vtag: 0x0a0b0c0d }, field: 'sctp' },
  ] as const;
  for (const k of cases) {
    const q = (k.build as typeof buildTcp)({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 42000, dport: k.vport, ttl: 50, ...k.req } as never);
    const s1 = td.send(q);
    t.same(outcome(s1), { verdict: 'forward', reason: 'nat-in', frames: 1 }, `${k.name} request`);
    const o1 = decode(only(s1));
    t.same([o1.saddr, o1.daddr, o1.dport, o1.ttl, o1.dstMac], [IP.client6, IP.rs61, k.dport, 49, MAC.rs61], `${k.name}: DNAT, hop limit - 1`);
    judge.add(`${k.name} request`, only(s1), { 'ipv6.src': IP.client6, 'ipv6.dst': IP.rs61, [`${k.field}.dstport`]: String(k.dport), 'ipv6.hlim': '49' });
    const r = (k.build as typeof buildTcp)({ ...fromRs(MAC.rs61), saddr: IP.rs61, daddr: IP.client6, sport: k.dport, dport: 42000, ...k.rep } as never);
    const s2 = td.send(r);
    t.same(outcome(s2), { verdict: 'forward', reason: 'nat-out', frames: 1 }, `${k.name} reply`);
    const o2 = decode(only(s2));
    t.same([o2.saddr, o2.sport, o2.daddr, o2.dstMac], [IP.vip6, k.vport, IP.client6, MAC.client], `${k.name}: SNAT`);
    judge.add(`${k.name} reply`, only(s2), { 'ipv6.src': IP.vip6, 'ipv6.dst': IP.client6, [`${k.field}.srcport`]: String(k.vport) });
  }
  const l = await td.ipvsadm('-L', '-n', '-t', `[${IP.vip6}]:80`);
  t.match(l.out, /TCP  \[2001:db8:f::100\]:80 rr\n  -> \[2001:db8:1::1\]:8080 +Masq +1 +1 +0 *\n/);
});

t.test('a partial (offloaded) checksum from a local sender is completed before forwarding', async (t) => {
  const td = director();
  await td.rules(NAT_RULES);
  const q = buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 43000, dport: 80, flags: TCP_SYN, l4Checksum: 'partial' });
  const s1 = td.send(q, FRAME_CSUM_NOT_READY);
  t.same(outcome(s1), { verdict: 'forward', reason: 'nat-in', frames: 1 });
  judge.add('TCP4 SYN with partial checksum', only(s1), { 'ip.dst': IP.rs1, 'tcp.dstport': '8080' });
  const r = buildUdp({ ...fromRs(MAC.rs1), saddr: IP.rs1, daddr: IP.client, sport: 5002, dport: 41000, payload: 'x', l4Checksum: 'partial' });
  // No UDP conn for 41000 in this director: create one first.
  td.send(buildUdp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 41000, dport: 5000, payload: 'q' }));
  const s2 = td.send(r, FRAME_CSUM_NOT_READY);
  t.same(outcome(s2), { verdict: 'forward', reason: 'nat-out', frames: 1 });
  judge.add('UDP4 reply with partial checksum', only(s2), { 'ip.src': IP.vip, 'udp.srcport': '5000' });
});

t.test('nothing else changes: a NAT rewrite touches only MACs, TTL, addresses, ports and checksums', async (t) => {
  const td = director();
  await td.rules(NAT_RULES);
  const q = buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 44000, dport: 80, flags: TCP_SYN, tos: 0x28, df: true, ipOptions: Uint8Array.of(1, 1, 1, 0) });
  const out = only(td.send(q));
  const d = decode(q);
  const l3 = d.l3Off;
  const l4 = d.l4Off;
  const allowed = new Set<number>([
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, // MACs
    l3 + 8, l3 + 10, l3 + 11, // TTL, header checksum
    l3 + 16, l3 + 17, l3 + 18, l3 + 19, // daddr
    l4 + 2, l4 + 3, l4 + 16, l4 + 17, // dport, checksum
  ]);
  t.same(diffOffsets(q, out).filter((o) => !allowed.has(o)), [], 'no other byte differs (TOS, DF, options kept)');
  judge.add('TCP4 with IP options and DF', out, { 'ip.dst': IP.rs1, 'ip.dsfield': '0x28', 'ip.flags.df': '1' });
});

judge.register(t);
