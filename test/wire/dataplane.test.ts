/**
 * The worker data plane on a real wire, driven in-process: a DataPlane in a lab
 * namespace (interface d0), and this test on the other end of the veth (p0),
 * injecting frames with AF_PACKET and reading what the director sends back.
 * Proves that a change made through the API reaches the very next batch, and
 * checks the neighbour machinery (ARP for VIPs, gratuitous ARP, next-hop
 * resolution with frames waiting for it), super-frame counting and the nftables
 * table's life cycle.
 */
import t from 'tap';
import { Lab } from '../../src/lab/netns.js';
import { AfPacketIo } from '../../src/io/afpacket.js';
import { interfaceInfo } from '../../src/io/afpacket-netdev.js';
import { DataPlane } from '../../src/io/dataplane.js';
import { buildArp, buildTcp, buildUdp } from '../../src/packet/build.js';
import { TCP_SYN } from '../../src/packet/consts.js';
import { formatMac } from '../../src/util/mac.js';
import { formatIp4 } from '../../src/util/ip.js';
import { CtlError, type DestSpec, type ServiceSpec } from '../../src/ctl/types.js';
import { collect, sendFrames, type Captured } from '../lab/helpers.js';
import { WIRE_SKIP } from './helpers.js';

const VIP = '10.0.0.100';
const CLIENT = '10.0.0.1';
const RS1 = '10.0.0.2';
const RS2 = '10.0.0.3';
const CLIENT_MAC = '02:00:00:00:00:c1';

const svc = (port = 80): ServiceSpec => ({
  af: 4, protocol: 6, addr: VIP, port, fwmark: 0, schedName: 'rr', flags: 0, timeout: 0, netmask: '255.255.255.255', pe: '',
});
const dest = (addr: string, weight = 1): DestSpec => ({
  af: 4, addr, port: 80, fwdMethod: 0, weight, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0,
});

t.test('worker data plane on a veth', WIRE_SKIP, async (t) => {
  const lab = Lab.create('dataplane');
  t.teardown(() => lab.teardown());
  const dirNs = await lab.addNs('dir');
  const peerNs = await lab.addNs('peer');
  // The peer holds the real servers' addresses (its kernel answers ARP for them) and plays the client.
  await lab.veth({ ns: 'dir', ifname: 'd0', addrs: ['10.0.0.254/24'] }, { ns: 'peer', ifname: 'p0', addrs: [`${RS1}/24`, `${RS2}/24`] });
  // Keep the peer's kernel from answering the forwarded SYNs (no RSTs muddying the wire).
  await lab.exec('peer', 'nft', ['add table inet t; add chain inet t c { type filter hook input priority 0; tcp dport 80 drop; }'].flatMap((s) => s.split(' ')));
  const d0 = interfaceInfo('d0', dirNs);
  const dMac = d0.macText;

  const dp = await DataPlane.create({ netns: dirNs, interfaces: ['d0'], capacity: 4096, offloadCheck: false, log: (l) => t.comment(l) });
  t.teardown(() => dp.stop());
  t.match(dp.description, /^afpacket on d0, nft table ulvs_\d+$/);
  // Before packet I/O nothing is forwarded: changes are staged, and startIo writes them in one nft run.
  const nftList = async (): Promise<string> => (await lab.exec('dir', 'nft', ['list', 'table', 'inet', dp.nftTable!])).stdout;
  await dp.api.addService(svc(8443));
  t.notMatch(await nftList(), /dport 8443/, 'a change before packet I/O is staged');
  await dp.startIo();
  t.match(await nftList(), /ip daddr 10\.0\.0\.100 tcp dport 8443 drop/, 'and written when packet I/O starts');
  await dp.api.delService({ af: 4, protocol: 6, addr: VIP, port: 8443, fwmark: 0 });
  t.notMatch(await nftList(), /dport 8443/, 'from then on each change is written before it returns');
  const io = AfPacketIo.open('p0', { netns: peerNs });
  t.teardown(() => io.close());

  let sport = 40000;
  const syn = (): Uint8Array => buildTcp({ srcMac: CLIENT_MAC, dstMac: dMac, saddr: CLIENT, daddr: VIP, sport: ++sport, dport: 80, flags: TCP_SYN });
  const isTcpFrom = (c: Captured, port: number): boolean => c.info.proto === 6 && (c.info.sport === port || c.info.dport === port);
  /** Sends one SYN and returns what the director sends back within `ms` for that connection. */
  const probe = async (ms = 400): Promise<Captured[]> => {
    sendFrames(io, [syn()]);
    const p = sport;
    return collect(io, ms, (c) => (c.info.proto === 6 && c.info.sport === p) || (c.info.proto === 1), (got) => got.length > 0);
  };

  await t.test('no service: the SYN is not the director\'s', async (t) => {
    const before = dp.counters().reasons['not-ours'] ?? 0;
    t.same(await probe(), [], 'nothing forwarded');
    await new Promise((r) => setTimeout(r, 50));
    t.ok((dp.counters().reasons['not-ours'] ?? 0) > before, 'counted as not-ours (shared counters, read without asking the worker)');
  });

  await t.test('a change through the API reaches the next batch', async (t) => {
    await dp.api.addService(svc());
    await dp.api.addDest(svc(), dest(RS1));
    // The next hop is unknown yet: the SYN waits while the director asks for RS1's MAC.
    const got = await probe(2000);
    t.equal(got.length, 1, 'the first SYN after the change is forwarded');
    const f = got[0]!;
    t.same([formatIp4(f.info.daddr[0]!), f.info.dport, formatIp4(f.info.saddr[0]!)], [RS1, 80, CLIENT], 'NAT: to RS1:80, from the client');
    t.equal(formatMac(f.bytes, 0), interfaceInfo('p0', peerNs).macText, 'to RS1\'s MAC, learned by ARP');
    t.equal(formatMac(f.bytes, 6), dMac, 'from d0');
    const c = dp.counters();
    t.ok(c.arpRequests >= 1 && c.neighQueued >= 1 && c.neighReleased >= 1, `resolved by ARP while the frame waited (${JSON.stringify({ req: c.arpRequests, q: c.neighQueued, rel: c.neighReleased })})`);
    const stats = (await dp.api.getService(svc())).dests[0]!.stats;
    t.same([stats.conns, stats.inpkts, stats.inbytes], [1, 1, f.info.ipLen], 'the SYN that waited is counted once (one connection, one packet, its bytes)');

    await dp.api.editDest(svc(), dest(RS1, 0));
    const quiesced = await probe();
    t.same(quiesced.filter((c) => isTcpFrom(c, sport)).map((c) => formatIp4(c.info.daddr[0]!)), [], 'weight 0: not forwarded any more');
    t.ok(quiesced.some((c) => c.info.proto === 1), 'the client gets ICMP port unreachable (no destination)');

    await dp.api.addDest(svc(), dest(RS2));
    const got2 = await probe(2000);
    t.same(got2.map((c) => formatIp4(c.info.daddr[0]!)), [RS2], 'the new destination takes the next SYN');

    await dp.api.delService(svc());
    t.same(await probe(), [], 'service deleted: the next SYN is left alone');

    // Interleaved: many changes and probes back to back; each probe must see the state its change left.
    for (let k = 0; k < 5; k++) {
      await dp.api.addService(svc());
      await dp.api.addDest(svc(), dest(k % 2 === 0 ? RS1 : RS2));
      const g = await probe(1000);
      t.same(g.map((c) => formatIp4(c.info.daddr[0]!)), [k % 2 === 0 ? RS1 : RS2], `round ${k}: forwarded to the destination just added`);
      await dp.api.delService(svc());
    }
  });

  await t.test('same errors as the in-process API', async (t) => {
    await dp.api.addService(svc(81));
    const errnoOf = (p: Promise<unknown>): Promise<string> =>
      p.then(() => 'resolved', (e: unknown) => (e instanceof CtlError ? e.errno : `not a CtlError: ${String(e)}`));
    t.equal(await errnoOf(dp.api.addService(svc(81))), 'EEXIST');
    t.equal(await errnoOf(dp.api.addDest(svc(82), dest(RS1))), 'ESRCH');
    t.equal(await errnoOf(dp.api.delDest(svc(81), dest(RS1))), 'ENOENT');
    await dp.api.delService(svc(81));
  });

  await t.test('ARP for the VIP and gratuitous ARP', async (t) => {
    const pMac = interfaceInfo('p0', peerNs).macText;
    const garp = collect(io, 1000, (c) => c.info.ethType === 0x0806 && c.info.arpOp === 1 && formatIp4(c.info.arpTpa) === '10.0.0.101', (g) => g.length > 0);
    await dp.api.addService({ ...svc(), addr: '10.0.0.101' });
    const g = await garp;
    t.equal(g.length, 1, 'a gratuitous ARP announces a new VIP');
    if (g.length === 1) t.equal(formatMac(g[0]!.bytes, 6), dMac, 'from d0');
    const req = buildArp({ op: 'request', srcMac: pMac, senderMac: pMac, senderIp: CLIENT, targetIp: '10.0.0.101' });
    sendFrames(io, [req]);
    const rep = await collect(io, 1000, (c) => c.info.ethType === 0x0806 && c.info.arpOp === 2, (x) => x.length > 0);
    t.equal(rep.length, 1, 'the director answers ARP for the VIP');
    if (rep.length === 1) t.equal(formatMac(rep[0]!.bytes, 6), dMac, 'with d0\'s MAC');
    await new Promise((r) => setTimeout(r, 50));
    const n = await dp.neighbours();
    t.ok(n.some((e) => e.ip === CLIENT && e.mac === pMac && e.state === 'REACHABLE'), 'the asker is learned (like the kernel learns from requests for its addresses)');
    await dp.api.delService({ ...svc(), addr: '10.0.0.101' });
  });

  await t.test('super-frames are dropped and counted', async (t) => {
    // A veth drops non-GSO frames above its MTU, so let 3000-byte frames through both ends:
    // the director still holds the 1500 it started with, as when GRO/LRO merge frames.
    await lab.ip('dir', ['link', 'set', 'd0', 'mtu', '4000']);
    await lab.ip('peer', ['link', 'set', 'p0', 'mtu', '4000']);
    const before = dp.counters().superFrames;
    sendFrames(io, [buildUdp({ srcMac: CLIENT_MAC, dstMac: dMac, saddr: CLIENT, daddr: VIP, sport: 5, dport: 53, payload: new Uint8Array(3000) })]);
    const deadline = Date.now() + 1000;
    while (dp.counters().superFrames === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    t.equal(dp.counters().superFrames, before + 1, 'one super-frame counted');
  });

  await t.test('the nftables table follows the services and goes away on stop', async (t) => {
    await dp.api.addService(svc());
    await dp.api.addDest(svc(), dest(RS1));
    const table = dp.nftTable!;
    const list = (await lab.exec('dir', 'nft', ['list', 'table', 'inet', table])).stdout;
    t.match(list, /ip daddr 10\.0\.0\.100 tcp dport 80 drop/, 'VIP:port dropped before the kernel sees it');
    t.match(list, /ip saddr 10\.0\.0\.2 tcp sport 80 fib daddr type != local drop/, 'NAT replies from RS1 dropped unless addressed to us');
    await dp.api.flush();
    const after = (await lab.exec('dir', 'nft', ['list', 'table', 'inet', table])).stdout;
    t.notMatch(after, /drop/, 'flush empties it');
    await dp.stop();
    const tables = (await lab.exec('dir', 'nft', ['list', 'tables'])).stdout;
    t.notMatch(tables, new RegExp(table), 'removed on stop');
    await t.rejects(dp.api.getInfo(), /./, 'the API fails once the data plane is stopped');
  });
});
