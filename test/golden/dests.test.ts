/**
 * Real-server life cycle through process(): weight 0 quiesces (no new connections, existing
 * ones continue), deleting a server drops its connections' packets (expire_nodest_conn=0) or
 * expires them (=1), connection reuse (conn_reuse_mode) and the packets that never schedule
 * (TCP non-SYN, SCTP non-INIT). The order of the checks is ip_vs_in_hook's.
 */
import t from 'tap';
import { buildSctp, buildTcp } from '../../src/packet/build.js';
import {
  IP, MAC, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, decode, director, fromClient, only, outcome, type TestDirector,
} from './helpers.js';

const RS_BY_MAC: Record<string, string> = { [MAC.rs1]: IP.rs1, [MAC.rs2]: IP.rs2, [MAC.rs3]: IP.rs3 };

const RULES = `-A -t ${IP.vip}:80 -s rr
-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -g -w 1
-a -t ${IP.vip}:80 -r ${IP.rs2}:80 -g -w 1
`;

function tcp(td: TestDirector, sport: number, flags: number, client: string = IP.client) {
  return td.send(buildTcp({ ...fromClient, saddr: client, daddr: IP.vip, sport, dport: 80, flags }));
}

/** The real server a forwarded step went to. */
function rsOf(s: ReturnType<typeof tcp>): string {
  return RS_BY_MAC[decode(only(s)).dstMac]!;
}

async function connsOf(td: TestDirector): Promise<string[]> {
  return (await td.ipvsadm('-L', '-n', '-c')).out.split('\n').slice(2).filter((l) => l);
}

t.test('weight 0 quiesces: no new connections, existing ones continue', async (t) => {
  const td = director();
  await td.rules(RULES);
  const s = tcp(td, 1000, TCP_SYN);
  const rs = rsOf(s);
  const other = rs === IP.rs1 ? IP.rs2 : IP.rs1;
  await td.ipvsadm('-e', '-t', `${IP.vip}:80`, '-r', `${rs}:80`, '-g', '-w', '0');
  const cont = tcp(td, 1000, TCP_ACK);
  t.same(outcome(cont), { verdict: 'forward', reason: 'dr', frames: 1 }, 'existing connection continues');
  t.equal(rsOf(cont), rs, 'to its quiesced server');
  for (let p = 1001; p <= 1004; p++) t.equal(rsOf(tcp(td, p, TCP_SYN)), other, `new connection ${p} avoids the weight-0 server`);
  const l = await td.ipvsadm('-L', '-n');
  t.match(l.out, new RegExp(`-> ${rs.replace(/\./g, '\\.')}:80 +Route +0 +1 +0`), 'quiesced server keeps its active connection');
  // All servers quiesced: no destination, ICMP port unreachable to the client.
  await td.ipvsadm('-e', '-t', `${IP.vip}:80`, '-r', `${other}:80`, '-g', '-w', '0');
  const none = tcp(td, 1005, TCP_SYN);
  t.same(outcome(none), { verdict: 'drop', reason: 'no-destination', frames: 1 });
  const icmp = decode(only(none));
  t.same([icmp.icmpType, icmp.icmpCode, icmp.saddr, icmp.daddr], [3, 3, IP.vip, IP.client]);
});

t.test('expire_nodest_conn=1: a SYN on a connection of a quiesced server is rescheduled', async (t) => {
  const td = director();
  await td.rules(RULES);
  const rs = rsOf(tcp(td, 2000, TCP_SYN));
  tcp(td, 2000, TCP_ACK); // ESTABLISHED
  await td.ipvsadm('-e', '-t', `${IP.vip}:80`, '-r', `${rs}:80`, '-g', '-w', '0');
  t.equal(rsOf(tcp(td, 2000, TCP_SYN)), rs, 'expire_nodest_conn=0: the SYN follows the old connection');
  td.d.table.sysctls.expire_nodest_conn = 1;
  t.equal(rsOf(tcp(td, 2000, TCP_ACK)), rs, 'a non-SYN still follows it');
  const again = tcp(td, 2000, TCP_SYN);
  t.same(outcome(again), { verdict: 'forward', reason: 'dr', frames: 1 });
  t.not(rsOf(again), rs, 'the SYN expires it and is scheduled to a live server');
});

t.test('deleting a server with expire_nodest_conn=0 drops its connections\' packets', async (t) => {
  const td = director();
  await td.rules(RULES);
  const rs = rsOf(tcp(td, 3000, TCP_SYN));
  tcp(td, 3000, TCP_ACK);
  await td.ipvsadm('-d', '-t', `${IP.vip}:80`, '-r', `${rs}:80`);
  const d = tcp(td, 3000, TCP_ACK | 0x08);
  t.same(outcome(d), { verdict: 'drop', reason: 'dest-unavailable', frames: 0 }, 'packet of the deleted server\'s connection dropped');
  t.ok((await connsOf(td)).some((l) => l.includes(':3000 ') && l.includes(`${rs}:80`)), 'the connection stays listed until it expires');
  const other = rs === IP.rs1 ? IP.rs2 : IP.rs1;
  t.equal(rsOf(tcp(td, 3001, TCP_SYN)), other, 'new connections go to the remaining server');

  // A SYN reusing the port of a closed connection of the deleted server is rescheduled, not
  // dropped: the reuse check runs before the server check.
  tcp(td, 3002, TCP_SYN); // rr: lands on `other`, the only one left
  await td.ipvsadm('-a', '-t', `${IP.vip}:80`, '-r', `${rs}:80`, '-g', '-w', '1');
  const back = tcp(td, 3003, TCP_SYN);
  t.equal(rsOf(back), rs, 're-added server gets a connection');
  tcp(td, 3003, TCP_ACK);
  tcp(td, 3003, TCP_RST); // CLOSE
  await td.ipvsadm('-d', '-t', `${IP.vip}:80`, '-r', `${rs}:80`);
  t.same(outcome(tcp(td, 3003, TCP_ACK)), { verdict: 'drop', reason: 'dest-unavailable', frames: 0 }, 'ACK on the closed conn: dropped');
  const reuse = tcp(td, 3003, TCP_SYN);
  t.same(outcome(reuse), { verdict: 'forward', reason: 'dr', frames: 1 }, 'SYN on the closed conn: rescheduled');
  t.equal(rsOf(reuse), other);
});

t.test('deleting a server with expire_nodest_conn=1 expires its connections', async (t) => {
  const td = director();
  await td.rules(RULES);
  td.d.table.sysctls.expire_nodest_conn = 1;
  const rs = rsOf(tcp(td, 4000, TCP_SYN));
  tcp(td, 4000, TCP_ACK);
  await td.ipvsadm('-d', '-t', `${IP.vip}:80`, '-r', `${rs}:80`);
  t.same(await connsOf(td), [], 'connection gone with its server');
  t.same(outcome(tcp(td, 4000, TCP_ACK)), { verdict: 'pass', reason: 'tcp-not-syn', frames: 0 }, 'its next non-SYN finds nothing');
  t.not(rsOf(tcp(td, 4000, TCP_SYN)), rs, 'a SYN starts over on the remaining server');
});

t.test('conn_reuse_mode: a SYN on a TIME_WAIT / CLOSE connection starts a new one', async (t) => {
  const td = director();
  await td.rules(RULES);
  const first = rsOf(tcp(td, 5000, TCP_SYN));
  tcp(td, 5000, TCP_ACK);
  tcp(td, 5000, TCP_RST); // CLOSE
  const again = tcp(td, 5000, TCP_SYN);
  t.not(rsOf(again), first, 'rescheduled (rr moves on): the old connection was expired');
  const st = await td.ipvsadm('-L', '-n', '--stats', '--exact');
  t.match(st.out, /TCP  10\.0\.0\.100:80 +2 /, 'two connections counted');

  const td0 = director();
  await td0.rules(RULES);
  td0.d.table.sysctls.conn_reuse_mode = 0;
  const f0 = rsOf(tcp(td0, 5000, TCP_SYN));
  tcp(td0, 5000, TCP_ACK);
  tcp(td0, 5000, TCP_FIN | TCP_ACK);
  tcp(td0, 5000, TCP_RST);
  t.equal(rsOf(tcp(td0, 5000, TCP_SYN)), f0, 'conn_reuse_mode=0: the old connection is reused');
});

t.test('packets that never schedule a connection', async (t) => {
  const td = director();
  await td.rules(RULES + `--add-service --sctp-service ${IP.vip}:3868 -s rr\n-a --sctp-service ${IP.vip}:3868 -r ${IP.rs1} -g\n`);
  t.same(outcome(tcp(td, 6000, TCP_ACK)), { verdict: 'pass', reason: 'tcp-not-syn', frames: 0 }, 'ACK without a connection');
  t.same(outcome(tcp(td, 6001, TCP_SYN | TCP_RST)), { verdict: 'pass', reason: 'tcp-not-syn', frames: 0 }, 'SYN+RST');
  t.same(outcome(tcp(td, 6002, TCP_FIN)), { verdict: 'pass', reason: 'tcp-not-syn', frames: 0 }, 'FIN');
  t.same(outcome(tcp(td, 20, TCP_SYN)), { verdict: 'pass', reason: 'ftp-data', frames: 0 }, 'source port 20 (active FTP data)');
  const data = td.send(buildSctp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 6003, dport: 3868, chunk: 'data', payload: 'x' }));
  t.same(outcome(data), { verdict: 'pass', reason: 'sctp-not-init', frames: 0 }, 'SCTP DATA without an association');
  t.same(await connsOf(td), [], 'nothing was created');
  t.same(outcome(td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 6004, dport: 81, flags: TCP_SYN }))),
    { verdict: 'pass', reason: 'not-ours', frames: 0 }, 'no service on port 81');
  td.d.table.sysctls.sloppy_tcp = 1;
  t.same(outcome(tcp(td, 6005, TCP_ACK)), { verdict: 'forward', reason: 'dr', frames: 1 }, 'sloppy_tcp=1: an ACK schedules');
  t.same(outcome(tcp(td, 6006, TCP_RST | TCP_ACK)), { verdict: 'pass', reason: 'tcp-not-syn', frames: 0 }, 'but never a RST');
});
