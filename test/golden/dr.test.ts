/**
 * Golden packets, direct routing through process(): the IP packet leaves unchanged except the
 * TTL / hop limit (and the IPv4 header checksum); only the Ethernet addresses change.
 */
import t from 'tap';
import { buildSctp, buildTcp, buildUdp } from '../../src/packet/build.js';
import {
  IP, MAC, Judge, TCP_ACK, TCP_FIN, TCP_SYN, decode, diffOffsets, director, fromClient, only, outcome,
} from './helpers.js';

const judge = new Judge();

const RULES = `-A -t ${IP.vip}:80 -s rr
-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -g -w 1
-A -u ${IP.vip}:5000 -s rr
-a -u ${IP.vip}:5000 -r ${IP.rs2} -g -w 1
--add-service --sctp-service ${IP.vip}:3868 -s rr
-a --sctp-service ${IP.vip}:3868 -r ${IP.rs1} -g -w 1
-A -t [${IP.vip6}]:443 -s rr
-a -t [${IP.vip6}]:443 -r [${IP.rs62}]:443 -g -w 1
`;

/** Offsets a DR transmit may change: both MACs, IPv4 TTL + header checksum / IPv6 hop limit. */
function drChanges(frame: Uint8Array): Set<number> {
  const d = decode(frame);
  const s = new Set<number>([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  if (d.af === 4) { s.add(d.l3Off + 8); s.add(d.l3Off + 10); s.add(d.l3Off + 11); } else s.add(d.l3Off + 7);
  return s;
}

t.test('DR: TCP, UDP and SCTP over IPv4, TCP over IPv6 — only MACs and TTL change', async (t) => {
  const td = director();
  await td.rules(RULES);
  const frames: [string, Uint8Array, string, string][] = [
    ['TCP4 SYN', buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 80, flags: TCP_SYN, tos: 0x10, ttl: 33 }), MAC.rs1, 'tcp'],
    ['TCP4 ACK+data', buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 80, flags: TCP_ACK, payload: 'hello' }), MAC.rs1, 'tcp'],
    ['UDP4', buildUdp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40001, dport: 5000, payload: 'dgram', df: true }), MAC.rs2, 'udp'],
    ['UDP4 zero checksum', buildUdp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40002, dport: 5000, payload: 'dgram', l4Checksum: 'zero' }), MAC.rs2, 'udp'],
    ['SCTP4 INIT', buildSctp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40003, dport: 3868 }), MAC.rs1, 'sctp'],
    ['TCP6 SYN', buildTcp({ ...fromClient, saddr: IP.client6, daddr: IP.vip6, sport: 40004, dport: 443, flags: TCP_SYN, flowLabel: 0x12345 }), MAC.rs62, 'tcp'],
  ];
  for (const [name, f, rsMac, l4] of frames) {
    const s = td.send(f);
    t.same(outcome(s), { verdict: 'forward', reason: 'dr', frames: 1 }, name);
    const o = only(s);
    const allowed = drChanges(f);
    t.same(diffOffsets(f, o).filter((x) => !allowed.has(x)), [], `${name}: nothing but MACs and TTL changes`);
    const a = decode(o);
    const b = decode(f);
    t.same([a.dstMac, a.srcMac, a.ttl, a.daddr], [rsMac, MAC.dir, b.ttl - 1, b.daddr], `${name}: to the RS MAC, TTL - 1, still to the VIP`);
    const exp: Record<string, string> = a.af === 4
      ? { 'eth.dst': rsMac, 'ip.dst': IP.vip, 'ip.ttl': String(b.ttl - 1) }
      : { 'eth.dst': rsMac, 'ipv6.dst': IP.vip6, 'ipv6.hlim': String(b.ttl - 1), 'ipv6.flow': '0x012345' };
    // A zero UDP checksum stays zero under DR (nothing above IP is touched): tshark reports it as absent.
    judge.add(`DR ${name}`, o, exp, name === 'UDP4 zero checksum' ? ['ip'] : undefined);
    void l4;
  }
  // Input-only table: SYN → SYN_RECV, ACK → ESTABLISHED; a FIN then → FIN_WAIT.
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 80, flags: TCP_FIN | TCP_ACK }));
  const lc = await td.ipvsadm('-L', '-n', '-c');
  t.match(lc.out, /\nTCP 02:00  FIN_WAIT    10\.0\.0\.1:40000 +10\.0\.0\.100:80 +10\.0\.1\.1:80\n/);
  const l = await td.ipvsadm('-L', '-n', '-t', `${IP.vip}:80`);
  t.match(l.out, /  -> 10\.0\.1\.1:80 +Route +1 +0 +1 *\n/, 'a FIN_WAIT conn counts as inactive');
});

t.test('DR: a reply from the real server is not ours (the RS answers the client directly)', async (t) => {
  const td = director();
  await td.rules(RULES);
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 80, flags: TCP_SYN }));
  const s = td.send(buildTcp({ srcMac: MAC.rs1, dstMac: MAC.dir, saddr: IP.vip, daddr: IP.client, sport: 80, dport: 40000, flags: TCP_SYN | TCP_ACK }));
  t.same(outcome(s), { verdict: 'pass', reason: 'not-ours', frames: 0 });
});

judge.register(t);
