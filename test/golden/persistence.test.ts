/**
 * Persistence through process(): -p sends a client's later connections to the same real server
 * (rr would otherwise rotate), -M groups clients by netmask, the template is listed by -Lnc like
 * the kernel's (client network, port 0), and it expires `-p` seconds after its last use on the
 * virtual clock — while it still controls connections it is kept.
 */
import t from 'tap';
import { buildTcp, buildUdp } from '../../src/packet/build.js';
import { IP, MAC, TCP_ACK, TCP_RST, TCP_SYN, decode, director, fromClient, only, type TestDirector } from './helpers.js';

const RS_BY_MAC: Record<string, string> = { [MAC.rs1]: IP.rs1, [MAC.rs2]: IP.rs2, [MAC.rs3]: IP.rs3 };

/** Three DR real servers, rr: without persistence consecutive connections rotate. */
function rules(persist: string): string {
  return `-A -t ${IP.vip}:80 -s rr ${persist}
-a -t ${IP.vip}:80 -r ${IP.rs1}:80 -g -w 1
-a -t ${IP.vip}:80 -r ${IP.rs2}:80 -g -w 1
-a -t ${IP.vip}:80 -r ${IP.rs3}:80 -g -w 1
`;
}

/** Opens a connection (SYN) and returns the real server it went to. */
function connect(td: TestDirector, client: string, sport: number): string {
  const s = td.send(buildTcp({ ...fromClient, saddr: client, daddr: IP.vip, sport, dport: 80, flags: TCP_SYN }));
  if (s.reason !== 'dr') throw new Error(`SYN not forwarded: ${s.verdict}/${s.reason}`);
  return RS_BY_MAC[decode(only(s)).dstMac]!;
}

/** Establishes, then resets a connection: CLOSE, gone 10 s later (a RST in SYN_RECV would keep SYN_RECV). */
function reset(td: TestDirector, client: string, sport: number): void {
  td.send(buildTcp({ ...fromClient, saddr: client, daddr: IP.vip, sport, dport: 80, flags: TCP_ACK }));
  td.send(buildTcp({ ...fromClient, saddr: client, daddr: IP.vip, sport, dport: 80, flags: TCP_RST | TCP_ACK }));
}

/** One -Lnc entry line (`%-3s %-6s %-11s %-18s %-18s %s`). */
function entry(proto: string, expire: string, state: string, c: string, v: string, d: string): string {
  return `${proto.padEnd(3)} ${expire.padEnd(6)} ${state.padEnd(11)} ${c.padEnd(18)} ${v.padEnd(18)} ${d}`;
}

async function connLines(td: TestDirector): Promise<string[]> {
  const r = await td.ipvsadm('-L', '-n', '-c');
  return r.out.split('\n').slice(2).filter((l) => l.length > 0);
}

t.test('without -p, rr rotates (the control for the tests below)', async (t) => {
  const td = director();
  await td.rules(rules(''));
  const got = [connect(td, IP.client, 1001), connect(td, IP.client, 1002), connect(td, IP.client, 1003)];
  t.equal(new Set(got).size, 3, `three connections, three servers (${got.join(', ')})`);
});

t.test('-p: the second and third connections of a client go to the same real server', async (t) => {
  const td = director();
  await td.rules(rules('-p 60'));
  const first = connect(td, IP.client, 1001);
  t.equal(connect(td, IP.client, 1002), first, 'second connection');
  t.equal(connect(td, IP.client, 1003), first, 'third connection');
  const other = connect(td, IP.client2, 2001);
  t.not(other, first, 'another client is scheduled anew (rr moves on)');
  t.equal(connect(td, IP.client2, 2002), other, 'and sticks too');
  const lines = await connLines(td);
  t.equal(lines.filter((l) => l.includes(':0 ')).length, 2, 'one template per client');
  t.ok(lines.includes(entry('TCP', '01:00', 'NONE', `${IP.client}:0`, `${IP.vip}:80`, `${first}:80`)),
    'template line as the kernel prints it', { lines });
  const l = await td.ipvsadm('-L', '-n');
  t.match(l.out, /TCP  10\.0\.0\.100:80 rr persistent 60\n/);
});

t.test('-M groups clients of one network under one template (f.7 example)', async (t) => {
  const td = director();
  await td.rules(rules('-p -M 255.255.255.0'));
  const a = connect(td, IP.client, 1001);
  t.equal(connect(td, IP.client2, 1002), a, '10.0.0.2 shares 10.0.0.1\'s template');
  t.equal(connect(td, IP.client3, 1003), a, '10.0.0.3 too');
  t.not(connect(td, '10.0.9.1', 1004), a, 'a client of another /24 is scheduled anew');
  const lines = await connLines(td);
  // Default -p is 360 s; the template is NONE until a controlled connection is established.
  t.ok(lines.includes(`TCP 06:00  NONE        10.0.0.0:0         10.0.0.100:80      ${a}:80`), 'the /24 template (f.7 example)', { lines });
  t.ok(lines.includes('TCP 06:00  NONE        10.0.9.0:0         10.0.0.100:80      ' + lines.find((x) => x.includes('10.0.9.0:0'))!.split(/\s+/).pop()), 'second template');
  t.equal(lines.filter((x) => x.startsWith('TCP 01:00  SYN_RECV')).length, 4, 'four connections in SYN_RECV');
  // The ACK establishes the connection and assures its template.
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 1001, dport: 80, flags: TCP_ACK }));
  const after = await connLines(td);
  t.ok(after.includes(`TCP 06:00  ASSURED     10.0.0.0:0         10.0.0.100:80      ${a}:80`), 'assured once a controlled connection is established', { after });
  t.ok(after.includes(`TCP 15:00  ESTABLISHED 10.0.0.1:1001      10.0.0.100:80      ${a}:80`));
  const l = await td.ipvsadm('-L', '-n');
  t.match(l.out, /persistent 360 mask 255\.255\.255\.0\n/);
});

t.test('the template expires -p seconds after its last use (virtual clock)', async (t) => {
  const td = director();
  await td.rules(rules('-p 60'));
  const first = connect(td, IP.client, 1001);
  reset(td, IP.client, 1001); // CLOSE: 10 s
  td.advance(30);
  t.equal(connect(td, IP.client, 1002), first, 't=30: template alive');
  reset(td, IP.client, 1002);
  td.advance(55);
  const lines = await connLines(td);
  t.same(lines, [entry('TCP', '00:05', 'ASSURED', `${IP.client}:0`, `${IP.vip}:80`, `${first}:80`)], 't=85: only the template is left, 5 s to go (60 s after its last use at t=30)');
  t.equal(connect(td, IP.client, 1003), first, 't=85: still the same server, template refreshed');
  reset(td, IP.client, 1003);
  td.advance(59);
  t.equal(connect(td, IP.client, 1004), first, 't=144: 59 s after the last use');
  reset(td, IP.client, 1004);
  td.advance(61);
  t.same(await connLines(td), [], 't=205: template and connections gone');
  t.not(connect(td, IP.client, 1005), first, 'a new template, scheduled anew by rr');
});

t.test('a template is kept while it controls connections', async (t) => {
  const td = director();
  await td.rules(rules('-p 10'));
  const first = connect(td, IP.client, 1001);
  td.send(buildTcp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport: 1001, dport: 80, flags: TCP_ACK })); // ESTABLISHED, 900 s
  td.advance(100);
  const lines = await connLines(td);
  t.ok(lines.some((l) => l.includes(`${IP.client}:0 `) && l.includes('ASSURED')), 'template still there at t=100', { lines });
  t.equal(connect(td, IP.client, 1002), first, 'and still used');
  const l = await td.ipvsadm('-L', '-n', '--persistent-conn');
  // Columns: Weight PersistConn ActiveConn InActConn — one template, two established connections.
  t.match(l.out, new RegExp(`-> ${first.replace(/\./g, '\\.')}:80 +1 +1 +2 +0 *\\n`), 'PersistConn counts the template');
});

t.test('UDP persistence and a quiesced server: the template keeps sending to weight 0', async (t) => {
  const td = director();
  await td.rules(`-A -u ${IP.vip}:5000 -s rr -p 300
-a -u ${IP.vip}:5000 -r ${IP.rs1}:5000 -g -w 1
-a -u ${IP.vip}:5000 -r ${IP.rs2}:5000 -g -w 1
`);
  const q = (sport: number) => RS_BY_MAC[decode(only(td.send(buildUdp({ ...fromClient, saddr: IP.client, daddr: IP.vip, sport, dport: 5000, payload: 'q' })))).dstMac];
  const first = q(3001);
  await td.ipvsadm('-e', '-u', `${IP.vip}:5000`, '-r', `${first}:5000`, '-g', '-w', '0');
  // expire_quiescent_template = 0 (default): the template still points at the quiesced server.
  t.equal(q(3002), first, 'persistent client follows its template to the weight-0 server');
  td.d.table.sysctls.expire_quiescent_template = 1;
  t.not(q(3003), first, 'with expire_quiescent_template=1 the template is dropped and a new server chosen');
});
