import t from 'tap';
import { TestDirector, CLIENT_MAC, DIR_MAC } from './harness.js';
import { buildTcp, buildUdp } from '../../src/packet/build.js';
import { parseFrame } from '../../src/packet/parse.js';
import { PacketInfo } from '../../src/packet/info.js';
import { formatIp4 } from '../../src/util/ip.js';
import { formatMac } from '../../src/util/mac.js';
import { haveTshark, judge } from '../util/tshark.js';

const RS1_MAC = '02:00:00:00:01:01';
const RS2_MAC = '02:00:00:00:01:02';
const SYN = 0x02, ACK = 0x10, PSH = 0x08, FIN = 0x01;

function fields(frame: Uint8Array) {
  const info = new PacketInfo();
  const rc = parseFrame(frame, 0, frame.length, info);
  return {
    rc, dstMac: formatMac(frame, 0), srcMac: formatMac(frame, 6),
    saddr: formatIp4(info.saddr[0]!), daddr: formatIp4(info.daddr[0]!), sport: info.sport, dport: info.dport,
    ttl: info.ttl, flags: info.tcpFlags,
  };
}

t.test('NAT: SYN to the VIP is DNATed to the scheduled real server, reply SNATed back', async (t) => {
  const td = new TestDirector({ neigh: { '10.0.1.1': RS1_MAC, '10.0.1.2': RS2_MAC, '10.0.0.1': CLIENT_MAC } });
  await td.rules(`-A -t 10.0.0.100:80 -s rr
-a -t 10.0.0.100:80 -r 10.0.1.1:8080 -m -w 1
-a -t 10.0.0.100:80 -r 10.0.1.2:8080 -m -w 1
`);
  const syn = buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: '10.0.0.1', daddr: '10.0.0.100', sport: 40000, dport: 80, flags: SYN, ttl: 64 });
  const s1 = td.send(syn);
  t.equal(s1.verdict, 'forward');
  t.equal(s1.reason, 'nat-in');
  t.equal(s1.out.length, 1);
  const f1 = fields(s1.out[0]!);
  // rr walks newest first: 10.0.1.2 was added last.
  t.same({ daddr: f1.daddr, dport: f1.dport, saddr: f1.saddr, sport: f1.sport, ttl: f1.ttl, dstMac: f1.dstMac, srcMac: f1.srcMac },
    { daddr: '10.0.1.2', dport: 8080, saddr: '10.0.0.1', sport: 40000, ttl: 63, dstMac: RS2_MAC, srcMac: DIR_MAC });

  const synack = buildTcp({ srcMac: RS2_MAC, dstMac: DIR_MAC, saddr: '10.0.1.2', daddr: '10.0.0.1', sport: 8080, dport: 40000, flags: SYN | ACK });
  const s2 = td.send(synack);
  t.equal(s2.reason, 'nat-out');
  const f2 = fields(s2.out[0]!);
  t.same({ saddr: f2.saddr, sport: f2.sport, daddr: f2.daddr, dport: f2.dport, dstMac: f2.dstMac },
    { saddr: '10.0.0.100', sport: 80, daddr: '10.0.0.1', dport: 40000, dstMac: CLIENT_MAC });

  const ack = buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: '10.0.0.1', daddr: '10.0.0.100', sport: 40000, dport: 80, flags: ACK | PSH, payload: 'GET / HTTP/1.0\r\n\r\n' });
  const s3 = td.send(ack);
  t.equal(s3.reason, 'nat-in');
  t.equal(fields(s3.out[0]!).daddr, '10.0.1.2', 'same connection, same server');

  // A second client goes to the other server (rr).
  const syn2 = buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: '10.0.0.1', daddr: '10.0.0.100', sport: 40001, dport: 80, flags: SYN });
  t.equal(fields(td.send(syn2).out[0]!).daddr, '10.0.1.1');

  const list = await td.ipvsadm('-L', '-n');
  // Current kernels count SYN_RECV as active (tcp_state_active_table), so both are active.
  t.match(list.out, /TCP  10\.0\.0\.100:80 rr\n  -> 10\.0\.1\.1:8080 +Masq +1 +1 +0 +\n  -> 10\.0\.1\.2:8080 +Masq +1 +1 +0 +\n/);
  const conns = await td.ipvsadm('-L', '-n', '-c');
  t.match(conns.out, /TCP 15:00  ESTABLISHED 10\.0\.0\.1:40000 +10\.0\.0\.100:80 +10\.0\.1\.2:8080/);

  if (haveTshark()) {
    const j = judge([...s1.out, ...s2.out, ...s3.out], ['ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport']);
    t.same([...j.problems.entries()], [], 'tshark: no bad checksum, nothing malformed');
    t.same(j.rows, [['10.0.0.1', '10.0.1.2', '40000', '8080'], ['10.0.0.100', '10.0.0.1', '80', '40000'], ['10.0.0.1', '10.0.1.2', '40000', '8080']]);
  }
  void FIN;
});

t.test('NAT UDP and no destination → ICMP port unreachable', async (t) => {
  const td = new TestDirector({ neigh: { '10.0.1.1': RS1_MAC } });
  await td.rules('-A -u 10.0.0.100:5000 -s wlc\n-a -u 10.0.0.100:5000 -r 10.0.1.1 -m\n');
  const q = buildUdp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: '10.0.0.1', daddr: '10.0.0.100', sport: 41000, dport: 5000, payload: 'query' });
  const s = td.send(q);
  t.equal(s.reason, 'nat-in');
  t.equal(fields(s.out[0]!).daddr, '10.0.1.1');
  await td.ipvsadm('-e', '-u', '10.0.0.100:5000', '-r', '10.0.1.1', '-m', '-w', '0');
  const q2 = buildUdp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: '10.0.0.2', daddr: '10.0.0.100', sport: 41000, dport: 5000, payload: 'query' });
  const s2 = td.send(q2);
  t.equal(s2.verdict, 'drop');
  t.equal(s2.reason, 'no-destination');
  t.equal(s2.out.length, 1, 'one ICMP error generated');
  const icmp = s2.out[0]!;
  const info = new PacketInfo();
  parseFrame(icmp, 0, icmp.length, info);
  t.equal(info.proto, 1);
  t.equal(info.icmpType, 3);
  t.equal(info.icmpCode, 3);
  t.equal(formatIp4(info.saddr[0]!), '10.0.0.100', 'sent from the VIP');
  t.equal(formatIp4(info.daddr[0]!), '10.0.0.2');
  t.equal(formatMac(icmp, 0), CLIENT_MAC, 'back to the sender MAC');
  if (haveTshark()) t.same([...judge([s.out[0]!, icmp]).problems.entries()], []);
});
