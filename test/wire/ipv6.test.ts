/**
 * IPv6 on the wire, end to end: an IPv6-only lab with no static neighbours, where
 * every next hop is found with Neighbor Discovery — the client asks for the VIP
 * (ulvs answers for it), ulvs asks for the real server, the real server asks for
 * its gateway (the director's kernel answers). `ulvs daemon` directs, our ipvsadm
 * adds an IPv6 TCP service, and curl -6 through the VIP gets the real server's page,
 * with NAT and with direct routing.
 *
 *   ns0 (client)                           ns1 (director)                ns2 (real server)
 *   br0 2001:db8:1::2/64 ─ veth01 ──────── veth10 2001:db8:1::1/64
 *          └──────────── veth02 ──────────────────────────────────────── veth20 2001:db8:1::3/64 (DR only)
 *                                          veth12 2001:db8:2::1/64 ──── veth21 2001:db8:2::2/64
 *   VIP 2001:db8:1::100 on the client's own link (so the client solicits it), not configured
 *   anywhere on the director; with DR also on the real server's lo (which never answers for it:
 *   Linux only advertises addresses of the interface a solicitation arrives on).
 *
 * Besides the pages: the client's neighbour entry for the VIP is the director's MAC; the
 * director announced the VIP with an unsolicited advertisement when the service was added;
 * tshark finds no bad checksum among the frames the director sent to the client; and
 * `ipvsadm -Ln --stats` counts the traffic.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../src/lab/netns.js';
import { dissectFile } from '../util/tshark.js';
import { DAEMON_ENV, REPO, WIRE_SKIP, capture, frameProblems, ipvsadm, nftTables, startDaemon, type Selftest } from './helpers.js';

const A6 = {
  vip: '2001:db8:1::100',
  cip: '2001:db8:1::2',
  gip: '2001:db8:1::1',
  sip: '2001:db8:1::3',
  dip: '2001:db8:2::1',
  rip: '2001:db8:2::2',
  port: 80,
} as const;

const SERVER_MAIN = join(REPO, 'dist', 'src', 'lab', 'server-main.js');
const REQUESTS = 5;

/** No duplicate address detection anywhere: addresses are usable at once (link-local ones too). */
const NO_DAD = { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 };

async function macOf(lab: Lab, ns: string, ifname: string): Promise<string> {
  const r = await lab.ip(ns, ['-j', 'link', 'show', ifname]);
  return (JSON.parse(r.stdout) as Array<{ address: string }>)[0]!.address;
}

async function buildLab(mode: 'nat' | 'dr'): Promise<Selftest> {
  const lab = Lab.create(`ipv6-${mode}`);
  const dir = mkdtempSync(join(tmpdir(), 'ulvs-ipv6-'));
  lab.onTeardown(() => rmSync(dir, { recursive: true, force: true }));
  const ns0 = await lab.addNs('ns0', NO_DAD);
  const ns1 = await lab.addNs('ns1', { ...NO_DAD, 'net.ipv6.conf.all.forwarding': 1 });
  const ns2 = await lab.addNs('ns2', NO_DAD);
  await lab.veth({ ns: 'ns0', ifname: 'veth01' }, { ns: 'ns1', ifname: 'veth10', addrs: [`${A6.gip}/64`] });
  await lab.veth({ ns: 'ns1', ifname: 'veth12', addrs: [`${A6.dip}/64`] }, { ns: 'ns2', ifname: 'veth21', addrs: [`${A6.rip}/64`] });
  await lab.bridge('ns0', 'br0', [`${A6.cip}/64`]);
  await lab.attach('ns0', 'veth01', 'br0');
  if (mode === 'nat') {
    await lab.route('ns2', ['default', 'via', A6.dip, 'dev', 'veth21']);
  } else {
    await lab.veth({ ns: 'ns0', ifname: 'veth02' }, { ns: 'ns2', ifname: 'veth20', addrs: [`${A6.sip}/64`] });
    await lab.attach('ns0', 'veth02', 'br0');
    await lab.addr('ns2', 'lo', `${A6.vip}/128`);
  }
  // ulvs refuses super-frames: no segmentation offload on the senders.
  for (const [ns, ifname] of [['ns0', 'br0'], ['ns0', 'veth01'], ['ns2', 'veth21']] as const) {
    await lab.offload(ns, ifname, { tso: false });
  }
  return { lab, ns0, ns1, ns2, mac10: await macOf(lab, 'ns1', 'veth10'), mac12: await macOf(lab, 'ns1', 'veth12'), dir };
}

/** The IPv6 neighbour entries of a namespace (ip -6 -j neigh). */
async function neighbours(st: Selftest, ns: string): Promise<Array<{ dst: string; lladdr?: string; state: string[] }>> {
  const r = await st.lab.exec(ns, 'ip', ['-6', '-j', 'neigh', 'show']);
  return JSON.parse(r.stdout || '[]') as Array<{ dst: string; lladdr?: string; state: string[] }>;
}

const FLAG = { nat: '-m', dr: '-g' } as const;

for (const mode of ['nat', 'dr'] as const) {
  t.test(`IPv6 ${mode.toUpperCase()} through ulvs daemon, every neighbour found with NDP`, WIRE_SKIP, async (t) => {
    const st = await buildLab(mode);
    t.teardown(() => st.lab.teardown());
    // (Kernels may already have learned a neighbour from a router solicitation; none is static.)
    for (const ns of ['ns0', 'ns1', 'ns2']) {
      t.same((await neighbours(st, ns)).filter((n) => n.state.includes('PERMANENT') || n.state.includes('NOARP')), [], `${ns}: no static neighbour`);
    }
    t.same((await neighbours(st, 'ns0')).filter((n) => n.dst === A6.vip), [], 'the client does not know the VIP yet');

    const server = st.lab.spawn('ns2', process.execPath, [SERVER_MAIN, '--name', `rs-${mode}`, '--http', String(A6.port)], DAEMON_ENV);
    await server.waitFor(/^ready /m, 15_000);
    const d = await startDaemon(st);
    t.match(d.ready, /afpacket on veth10,veth12, nft table ulvs_\d+/, 'the daemon serves both interfaces');

    // Watch what the director sends the client's side from before the VIP exists.
    const cap = await capture(st, 'ns0', 'veth01', st.mac10, 'client-side');
    const svc = `[${A6.vip}]:${A6.port}`;
    await ipvsadm(st, ['-A', '-t', svc, '-s', 'rr']);
    await ipvsadm(st, ['-a', '-t', svc, '-r', `[${A6.rip}]:${A6.port}`, FLAG[mode]]);
    const nft = await st.lab.exec('ns1', 'nft', ['list', 'ruleset']);
    t.match(nft.stdout, new RegExp(`ip6 daddr ${A6.vip.replace(/\./g, '\\.')} tcp dport ${A6.port} drop`), 'IPv6 VIP traffic is hidden from the kernel');
    if (mode === 'nat') {
      t.match(nft.stdout, new RegExp(`ip6 saddr ${A6.rip} tcp sport ${A6.port} fib daddr type != local drop`), 'and the real server\'s raw replies');
    }

    const bodies: string[] = [];
    for (let i = 0; i < REQUESTS; i++) {
      const r = await st.lab.exec('ns0', 'curl', ['-6', '-sS', '--max-time', '5', `http://[${A6.vip}]:${A6.port}/`], { timeoutMs: 10_000, allowFail: true });
      bodies.push(r.code === 0 ? r.stdout : `curl exit ${r.code}: ${r.stderr.trim()}`);
    }
    t.same(bodies, Array(REQUESTS).fill(`hello from rs-${mode}\n`), `${REQUESTS} requests through the VIP answered by the real server`);
    const file = await cap.stop();

    const vipEntry = (await neighbours(st, 'ns0')).find((n) => n.dst === A6.vip);
    t.equal(vipEntry?.lladdr, st.mac10, 'the client found the VIP at the director\'s MAC (our Neighbor Advertisement)');
    const rsEntry = (await neighbours(st, 'ns2')).find((n) => n.dst === A6.dip || n.dst.startsWith('fe80:'));
    if (mode === 'nat') t.equal(rsEntry?.lladdr, st.mac12, 'the real server found its gateway (the director\'s kernel answered)');

    const frames = dissectFile(file, ['icmpv6.type', 'ipv6.dst', 'icmpv6.nd.na.target_address', 'icmpv6.nd.na.flag.s', 'icmpv6.opt.linkaddr', 'tcp.srcport']);
    const bad = frames.map((f) => ({ f, why: frameProblems(f) })).filter((x) => x.why.length > 0).map(({ f, why }) => `#${f.n} ${f.protocols}: ${why.join(', ')}`);
    t.same(bad, [], `no bad checksum and no malformed frame among the ${frames.length} frames the director sent the client`);
    const unsolicited = frames.filter((f) => f.one('icmpv6.type') === '136' && f.one('ipv6.dst') === 'ff02::1' &&
      f.one('icmpv6.nd.na.target_address') === A6.vip);
    t.ok(unsolicited.length >= 1, `the VIP was announced to all nodes when its service was added (${unsolicited.length})`);
    t.ok(unsolicited.every((f) => f.one('icmpv6.nd.na.flag.s') === '0' && f.one('icmpv6.opt.linkaddr') === st.mac10), 'unsolicited, with veth10\'s MAC');
    const solicitedAnswers = frames.filter((f) => f.one('icmpv6.type') === '136' && f.one('ipv6.dst') === A6.cip);
    t.ok(solicitedAnswers.length >= 1 && solicitedAnswers.every((f) => f.one('icmpv6.opt.linkaddr') === st.mac10),
      'the client\'s solicitation was answered with veth10\'s MAC (not the other interface\'s)');
    if (mode === 'nat') {
      const replies = frames.filter((f) => f.one('tcp.srcport') !== '');
      t.ok(replies.length > 0, `${replies.length} NAT replies went to the client from the director`);
    }

    const stats = await ipvsadm(st, ['-Ln', '--stats', '--exact']);
    const row = new RegExp(`->\\s+\\[${A6.rip}\\]:${A6.port}\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)`).exec(stats);
    t.ok(row !== null, `the real server's row: ${stats}`);
    if (row !== null) {
      const [conns, inPkts, outPkts, inBytes, outBytes] = row.slice(1).map(Number) as [number, number, number, number, number];
      t.equal(conns, REQUESTS, 'one connection per request');
      t.ok(inPkts >= REQUESTS * 4 && inBytes > 0, `client → server packets counted (${inPkts} packets, ${inBytes} bytes)`);
      if (mode === 'nat') t.ok(outPkts >= REQUESTS * 3 && outBytes > 0, `NAT replies counted as OutPkts (${outPkts})`);
      else t.equal(outPkts, 0, 'direct routing: replies never pass the director');
    }

    d.proc.child.kill('SIGTERM');
    const ex = await Promise.race([d.proc.exited(), new Promise<null>((res) => setTimeout(() => res(null), 10_000))]);
    t.same(ex, { code: 0, signal: null }, 'the daemon exits 0 on SIGTERM');
    t.same((await nftTables(st, 'ns1')).filter((n) => n.includes('ulvs_')), [], 'its nftables table is gone');
  });
}
