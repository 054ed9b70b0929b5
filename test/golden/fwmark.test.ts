/**
 * Firewall-mark services with the in-engine classifier, configured the way a user would: the
 * `--add-mark-rule` lines of a rules file applied through `ipvsadm -R`. Checks which packets get
 * which mark (and so which service), fwmark persistence across ports (the template listed as
 * IP … 0.0.0.MARK:0 like the kernel's, f.7), NAT with a port-less fwmark dest, and that -S
 * writes the mark rules so -R restores the same table.
 */
import t from 'tap';
import { buildTcp, buildUdp } from '../../src/packet/build.js';
import { IP, MAC, Judge, TCP_ACK, TCP_SYN, decode, director, fromClient, only, outcome } from './helpers.js';

const judge = new Judge();

const RULES = `--add-mark-rule tcp ${IP.vip}/32 80 42
--add-mark-rule tcp ${IP.vip}/32 443 42
--add-mark-rule udp 10.0.0.200/31 7000-7010 7
--add-mark-rule any 2001:db8:f::/64 * 66
-A -f 42 -s rr -p 6000
-a -f 42 -r ${IP.rs1}:0 -g -w 1
-a -f 42 -r ${IP.rs2}:0 -g -w 1
-A -f 7 -s rr
-a -f 7 -r ${IP.rs3}:0 -m -w 1
-A -f 66 -6 -s rr
-a -f 66 -6 -r [${IP.rs61}]:0 -g -w 1
`;

function syn(daddr: string, dport: number, sport: number, saddr: string = IP.client): Uint8Array {
  return buildTcp({ ...fromClient, saddr, daddr, sport, dport, flags: TCP_SYN });
}

t.test('mark rules select the fwmark service; fwmark persistence spans ports', async (t) => {
  const td = director();
  await td.rules(RULES);
  const s80 = td.send(syn(IP.vip, 80, 40000));
  t.same(outcome(s80), { verdict: 'forward', reason: 'dr', frames: 1 }, 'port 80 → mark 42');
  const rsMac = decode(only(s80)).dstMac;
  const s443 = td.send(syn(IP.vip, 443, 40001));
  t.same(outcome(s443), { verdict: 'forward', reason: 'dr', frames: 1 }, 'port 443 → mark 42');
  t.equal(decode(only(s443)).dstMac, rsMac, 'same real server for 80 and 443 (one fwmark template)');
  judge.add('fwmark DR :80', only(s80), { 'ip.dst': IP.vip, 'tcp.dstport': '80', 'eth.dst': rsMac });
  judge.add('fwmark DR :443', only(s443), { 'ip.dst': IP.vip, 'tcp.dstport': '443', 'eth.dst': rsMac });
  t.same(outcome(td.send(syn(IP.vip, 8080, 40002))), { verdict: 'pass', reason: 'not-ours', frames: 0 }, 'port 8080: no rule, no mark, no service');
  t.same(outcome(td.send(buildUdp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40003, dport: 80 }))),
    { verdict: 'pass', reason: 'not-ours', frames: 0 }, 'UDP to port 80: the tcp rule does not match');

  // The template: protocol IP, vaddr = the mark as an IPv4 address, ports 0 (f.7).
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 40000, dport: 80, flags: TCP_ACK }));
  td.advance(1);
  const lc = await td.ipvsadm('-L', '-n', '-c');
  const rs = rsMac === MAC.rs1 ? IP.rs1 : IP.rs2;
  t.ok(lc.out.includes(`\nIP  99:59  ASSURED     ${IP.client}:0         0.0.0.42:0         ${rs}:0\n`), 'fwmark template: IP, 0.0.0.MARK:0 (f.7)', { listing: lc.out });
  t.ok(lc.out.includes(`\nTCP 14:59  ESTABLISHED ${IP.client}:40000     ${IP.vip}:80      ${rs}:80\n`), 'the connection keeps its real port');
});

t.test('NAT fwmark service with a port-less dest keeps the destination port; prefixes and ranges', async (t) => {
  const td = director();
  await td.rules(RULES);
  for (const [daddr, dport, ours] of [
    ['10.0.0.200', 7000, true], ['10.0.0.201', 7010, true], ['10.0.0.201', 7005, true],
    ['10.0.0.202', 7005, false], ['10.0.0.200', 6999, false], ['10.0.0.200', 7011, false],
  ] as const) {
    const s = td.send(buildUdp({ ...fromClient, saddr: IP.client, daddr, sport: 41000, dport, payload: 'm' }));
    if (!ours) { t.same(outcome(s), { verdict: 'pass', reason: 'not-ours', frames: 0 }, `${daddr}:${dport} not marked`); continue; }
    t.same(outcome(s), { verdict: 'forward', reason: 'nat-in', frames: 1 }, `${daddr}:${dport} → mark 7`);
    const o = decode(only(s));
    t.same([o.daddr, o.dport], [IP.rs3, dport], `${daddr}:${dport}: DNAT to ${IP.rs3}, port kept`);
    judge.add(`fwmark NAT ${daddr}:${dport}`, only(s), { 'ip.dst': IP.rs3, 'udp.dstport': String(dport) });
    // The reply is SNATed back to the address and port the client used.
    const r = td.send(buildUdp({ srcMac: MAC.rs3, dstMac: MAC.dir, saddr: IP.rs3, daddr: IP.client, sport: dport, dport: 41000, payload: 'r' }));
    t.same(outcome(r), { verdict: 'forward', reason: 'nat-out', frames: 1 }, `${daddr}:${dport}: reply`);
    const ro = decode(only(r));
    t.same([ro.saddr, ro.sport], [daddr, dport], 'reply from the address the client used');
    judge.add(`fwmark NAT reply ${daddr}:${dport}`, only(r), { 'ip.src': daddr, 'udp.srcport': String(dport) });
  }
  const s6 = td.send(buildTcp({ ...fromClient, saddr: IP.client6, daddr: '2001:db8:f::77', sport: 42000, dport: 9999, flags: TCP_SYN }));
  t.same(outcome(s6), { verdict: 'forward', reason: 'dr', frames: 1 }, 'IPv6 /64 rule, any protocol, any port');
  t.equal(decode(only(s6)).dstMac, MAC.rs61);
});

t.test('-S saves the mark rules first; restoring the save gives the same table', async (t) => {
  const td = director();
  await td.rules(RULES);
  const saved = (await td.ipvsadm('-S', '-n')).out;
  t.match(saved, /^--add-mark-rule tcp 10\.0\.0\.100\/32 80 42\n--add-mark-rule tcp 10\.0\.0\.100\/32 443 42\n--add-mark-rule udp 10\.0\.0\.200\/31 7000-7010 7\n--add-mark-rule any 2001:db8:f::\/64 \* 66\n-A -f /);
  const td2 = director();
  await td2.rules(saved);
  t.equal((await td2.ipvsadm('-S', '-n')).out, saved, 'save → restore → save is stable');
  t.same(outcome(td2.send(syn(IP.vip, 443, 40000))), { verdict: 'forward', reason: 'dr', frames: 1 }, 'restored rules classify');
  const ml = await td2.ipvsadm('-L', '--mark-rules', '-n');
  t.equal(ml.rc, 0);
  t.match(ml.out, /10\.0\.0\.200\/31/);
});

judge.register(t);
