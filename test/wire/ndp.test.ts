/**
 * IPv6 next hops without a wire: the NDP frames the director writes (judged by
 * tshark) and reads (what a receiver must refuse), the IPv6 routing table and
 * address readers, the NDP cache's state machine behind NeighbourCache (ask, learn,
 * age, re-probe, give up, link-local gateways), and the announcement of new VIPs.
 */
import t from 'tap';
import { NeighbourCache, type NeighIface } from '../../src/neigh/cache.js';
import { RouteTable4 } from '../../src/neigh/routes.js';
import { RouteTable6, parseProcIpv6Route, route6 } from '../../src/neigh/routes6.js';
import { parseIfInet6, directorIp6, type IfAddr6 } from '../../src/neigh/addrs6.js';
import {
  NdView, ND_NA, ND_NS, NA_F_OVERRIDE, NA_F_SOLICITED, answerNs, readNd, setNaSourceMac, writeNa, writeNs, writeUnsolicitedNa,
} from '../../src/neigh/ndp.js';
import { Vip6Announcer } from '../../src/neigh/announce6.js';
import { HideTracker } from '../../src/io/hide-state.js';
import { Director } from '../../src/core/director.js';
import { StaticNeighbours } from '../../src/neigh/static.js';
import { TxQueue } from '../../src/io/batch.js';
import { buildIcmp } from '../../src/packet/build.js';
import { rd32 } from '../../src/packet/bytes.js';
import { Ip6Set } from '../../src/util/ip6-set.js';
import { formatIp6, parseIp6 } from '../../src/util/ip.js';
import { formatMac, parseMac } from '../../src/util/mac.js';
import { Judge } from '../golden/helpers.js';

const judge = new Judge();
const W = (s: string): number[] => { const w = parseIp6(s); if (w === null) throw new Error(s); return w; };
const A = (s: string): Uint32Array => Uint32Array.from(W(s));
const mac = (s: string): Uint8Array => parseMac(s)!;
const addrAt = (b: Uint8Array, o: number): string => formatIp6(rd32(b, o), rd32(b, o + 4), rd32(b, o + 8), rd32(b, o + 12));

function ifAddr(ifindex: number, ifname: string, cidr: string, scope = 0, flags = 0x80): IfAddr6 {
  const [a, p] = cidr.split('/');
  return { addr: W(a!), prefix: Number(p), ifindex, ifname, scope, flags };
}

const MAC0 = '02:00:00:00:00:10';
const MAC1 = '02:00:00:00:00:11';
const ETH0: NeighIface = {
  index: 2, name: 'eth0', mac: mac(MAC0), ip4: 0, prefix: 0,
  ip6: [ifAddr(2, 'eth0', '2001:db8:1::fe/64'), ifAddr(2, 'eth0', 'fe80::10/64', 0x20)],
};
const ETH1: NeighIface = {
  index: 3, name: 'eth1', mac: mac(MAC1), ip4: 0, prefix: 0,
  ip6: [ifAddr(3, 'eth1', '2001:db8:2::fe/64'), ifAddr(3, 'eth1', 'fe80::11/64', 0x20)],
};

// What /proc/net/ipv6_route showed in a namespace (main and local tables mixed).
const PROC_ROUTE6 = `20010db8000100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0
20010db8000200000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth1
20010db8000500000000000000000000 30 00000000000000000000000000000000 00 20010db80001000000000000000000fd 00000400 00000001 00000000 00000003     eth0
fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth1
00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo
20010db80001000000000000000000fe 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001     eth0
ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
`;
const ROUTES6 = new RouteTable6(parseProcIpv6Route(PROC_ROUTE6));

t.test('routes: /proc/net/ipv6_route, longest prefix first, local/multicast/reject left out', async (t) => {
  const text = (r: ReturnType<RouteTable6['lookup']>) => r === null ? null : [r.ifname, r.gateway === null ? 'on-link' : formatIp6(r.gateway[0]!, r.gateway[1]!, r.gateway[2]!, r.gateway[3]!)];
  t.equal(ROUTES6.size, 5, 'the local, multicast and reject routes are left out');
  t.same(text(ROUTES6.lookup(W('2001:db8:1::7'))), ['eth0', 'on-link']);
  t.same(text(ROUTES6.lookup(W('2001:db8:5:1::9'))), ['eth0', '2001:db8:1::fd'], 'a /48 via a gateway beats the default');
  t.same(text(ROUTES6.lookup(W('2001:db8:99::1'))), ['eth1', 'fe80::1'], 'default route via a link-local router');
  t.same(text(ROUTES6.lookup(W('fe80::77'))), ['eth0', 'on-link']);
  const rt = new RouteTable6([route6('default', 'fe80::1', 'eth1', 1024), route6('2001:db8:1::/64', null, 'eth0')]);
  t.same(text(rt.lookup(W('2001:db8:1::1'))), ['eth0', 'on-link'], 'route6() builds the same records');
  t.equal(new RouteTable6(parseProcIpv6Route(PROC_ROUTE6)).signature, ROUTES6.signature, 'stable signature: refreshes are no-ops');
});

t.test('addresses: /proc/net/if_inet6 and the director\'s own IPv6 address', async (t) => {
  const a = parseIfInet6(`00000000000000000000000000000001 01 80 10 80       lo
20010db8000100000000000000000001 02 40 00 82       x0
fe80000000000000c049c7fffe39eaaa 02 40 20 c0       x0
20010db8000900000000000000000001 03 40 00 c0       x1
`);
  t.same(a.map((x) => [formatIp6(x.addr[0]!, x.addr[1]!, x.addr[2]!, x.addr[3]!), x.ifindex, x.prefix, x.scope, x.ifname]), [
    ['::1', 1, 128, 0x10, 'lo'], ['2001:db8:1::1', 2, 64, 0, 'x0'], ['fe80::c049:c7ff:fe39:eaaa', 2, 64, 0x20, 'x0'], ['2001:db8:9::1', 3, 64, 0, 'x1'],
  ]);
  const ip = directorIp6(a, [2, 3], 3);
  t.same(ip === undefined ? null : formatIp6(ip[0]!, ip[1]!, ip[2]!, ip[3]!), '2001:db8:1::1', 'a tentative address is never a source');
  t.equal(directorIp6(a, [1]), undefined, 'loopback is not served');
});

t.test('Ip6Set: membership by words and by bytes', async (t) => {
  const s = new Ip6Set([W('2001:db8::1'), W('2001:db8::2'), W('2001:db8::1')]);
  t.equal(s.size, 2, 'duplicates once');
  t.ok(s.hasWords(W('2001:db8::2')));
  t.notOk(s.hasWords(W('2001:db8::3')));
  const b = new Uint8Array(20);
  for (let i = 0; i < 4; i++) { const w = W('2001:db8::1')[i]!; b[2 + 4 * i] = w >>> 24; b[3 + 4 * i] = w >>> 16; b[4 + 4 * i] = w >>> 8; b[5 + 4 * i] = w; }
  t.ok(s.hasAt(b, 2));
  t.notOk(new Ip6Set().hasAt(b, 2), 'the empty set');
  const many = new Ip6Set(Array.from({ length: 1000 }, (_v, i) => [0x20010db8, 0, 0, i]));
  t.equal(many.size, 1000);
  t.ok(Array.from({ length: 1000 }, (_v, i) => many.has(0x20010db8, 0, 0, i)).every(Boolean), 'every member found');
  t.notOk(many.has(0x20010db8, 0, 1, 5));
});

t.test('frames: solicitations and advertisements we write, read back and judged by tshark', async (t) => {
  const buf = new Uint8Array(200);
  const v = new NdView();
  // Multicast solicitation: to the target's solicited-node group.
  let n = writeNs(buf, 0, mac(MAC0), W('2001:db8:1::fe'), W('2001:db8:1::abcd:1234'));
  t.equal(n, 86);
  t.ok(readNd(buf, 0, n, v), 'reads back');
  t.same([formatMac(buf, 0), addrAt(buf, v.dstOff), addrAt(buf, v.srcOff), addrAt(buf, v.targetOff), v.type, formatMac(buf, v.llaOff)],
    ['33:33:ff:cd:12:34', 'ff02::1:ffcd:1234', '2001:db8:1::fe', '2001:db8:1::abcd:1234', ND_NS, MAC0]);
  judge.add('NS multicast', buf.slice(0, n), {
    'eth.dst': '33:33:ff:cd:12:34', 'ipv6.dst': 'ff02::1:ffcd:1234', 'ipv6.hlim': '255', 'icmpv6.type': '135',
    'icmpv6.nd.ns.target_address': '2001:db8:1::abcd:1234', 'icmpv6.opt.linkaddr': MAC0,
  });
  // Unicast re-probe of a known neighbour.
  n = writeNs(buf, 0, mac(MAC0), W('fe80::10'), W('fe80::7'), mac('02:00:00:00:00:07'));
  t.ok(readNd(buf, 0, n, v));
  t.same([formatMac(buf, 0), addrAt(buf, v.dstOff)], ['02:00:00:00:00:07', 'fe80::7'], 'unicast to the neighbour');
  judge.add('NS unicast', buf.slice(0, n), { 'eth.dst': '02:00:00:00:00:07', 'ipv6.dst': 'fe80::7', 'icmpv6.type': '135' });
  // No address yet: from :: without a link-layer option.
  n = writeNs(buf, 0, mac(MAC0), null, W('2001:db8:1::7'));
  t.equal(n, 78, 'no option');
  t.ok(readNd(buf, 0, n, v));
  t.ok(v.unspecSrc);
  t.equal(v.llaOff, -1);
  judge.add('NS from ::', buf.slice(0, n), { 'ipv6.src': '::', 'icmpv6.type': '135' });
  // Unsolicited advertisement of a VIP.
  n = writeUnsolicitedNa(buf, 0, mac(MAC0), W('2001:db8:1::100'));
  t.ok(readNd(buf, 0, n, v));
  t.same([formatMac(buf, 0), addrAt(buf, v.srcOff), addrAt(buf, v.dstOff), v.type, v.flags, formatMac(buf, v.llaOff)],
    ['33:33:00:00:00:01', '2001:db8:1::100', 'ff02::1', ND_NA, NA_F_OVERRIDE, MAC0]);
  judge.add('unsolicited NA', buf.slice(0, n), {
    'ipv6.dst': 'ff02::1', 'icmpv6.type': '136', 'icmpv6.nd.na.flag.s': '0', 'icmpv6.nd.na.flag.o': '1',
    'icmpv6.nd.na.target_address': '2001:db8:1::100', 'icmpv6.opt.linkaddr': MAC0,
  });
  // Answer in place, then re-sourced from the other interface's MAC.
  const sol = buildIcmp({
    srcMac: '02:00:00:00:00:c1', dstMac: '33:33:ff:00:01:00', saddr: '2001:db8:1::c1', daddr: 'ff02::1:ff00:100', ttl: 255,
    icmpType: ND_NS, body: Uint8Array.of(...nsTarget('2001:db8:1::100'), 1, 1, ...mac('02:00:00:00:00:c1')),
  });
  const f = new Uint8Array(200);
  f.set(sol, 10);
  t.ok(readNd(f, 10, sol.length, v), 'the builder\'s solicitation is valid');
  n = answerNs(f, 10, v, mac(MAC0));
  t.ok(setNaSourceMac(f, 10, n, mac(MAC1), v), 'another of our MACs');
  t.same([formatMac(f, 10), formatMac(f, 16), addrAt(f, v.srcOff), addrAt(f, v.dstOff), v.flags, formatMac(f, v.llaOff)],
    ['02:00:00:00:00:c1', MAC1, '2001:db8:1::100', '2001:db8:1::c1', NA_F_SOLICITED | NA_F_OVERRIDE, MAC1]);
  judge.add('NA answered, then re-sourced', f.slice(10, 10 + n), { 'eth.src': MAC1, 'icmpv6.opt.linkaddr': MAC1, 'icmpv6.nd.na.flag.s': '1' });
  n = writeNa(buf, 0, mac(MAC0), mac('02:00:00:00:00:c1'), W('2001:db8:1::100'), W('2001:db8:1::c1'), W('2001:db8:1::100'), NA_F_SOLICITED);
  judge.add('NA unicast', buf.slice(0, n), { 'eth.dst': '02:00:00:00:00:c1', 'ipv6.dst': '2001:db8:1::c1', 'icmpv6.nd.na.flag.o': '0' });
});

function nsTarget(s: string): number[] {
  return W(s).flatMap((w) => [w >>> 24, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff]);
}

t.test('frames: what a receiver must refuse (RFC 4861 7.1)', async (t) => {
  const v = new NdView();
  const base = { srcMac: '02:00:00:00:00:c1', dstMac: '33:33:ff:00:00:07', saddr: '2001:db8:1::c1', daddr: 'ff02::1:ff00:7', ttl: 255, icmpType: ND_NS };
  const slla = [1, 1, ...mac('02:00:00:00:00:c1')];
  const ok = buildIcmp({ ...base, body: Uint8Array.of(...nsTarget('2001:db8:1::7'), ...slla) });
  t.ok(readNd(ok, 0, ok.length, v), 'the reference solicitation passes');
  const bad: Array<[string, Uint8Array]> = [
    ['hop limit 64', buildIcmp({ ...base, ttl: 64, body: Uint8Array.of(...nsTarget('2001:db8:1::7'), ...slla) })],
    ['code 1', buildIcmp({ ...base, icmpCode: 1, body: Uint8Array.of(...nsTarget('2001:db8:1::7'), ...slla) })],
    ['bad checksum', buildIcmp({ ...base, l4Checksum: 'bad', body: Uint8Array.of(...nsTarget('2001:db8:1::7'), ...slla) })],
    ['multicast target', buildIcmp({ ...base, body: Uint8Array.of(...nsTarget('ff02::1'), ...slla) })],
    ['zero-length option', buildIcmp({ ...base, body: Uint8Array.of(...nsTarget('2001:db8:1::7'), 1, 0, 0, 0, 0, 0, 0, 0) })],
    ['option past the end', buildIcmp({ ...base, body: Uint8Array.of(...nsTarget('2001:db8:1::7'), 1, 2, 0, 0, 0, 0, 0, 0) })],
    ['too short', buildIcmp({ ...base, body: Uint8Array.of(...nsTarget('2001:db8:1::7')).subarray(0, 12) })],
    [':: with a link-layer option', buildIcmp({ ...base, saddr: '::', body: Uint8Array.of(...nsTarget('2001:db8:1::7'), ...slla) })],
    [':: to a unicast address', buildIcmp({ ...base, saddr: '::', daddr: '2001:db8:1::7', body: Uint8Array.of(...nsTarget('2001:db8:1::7')) })],
    ['solicited NA to a group', buildIcmp({ ...base, icmpType: ND_NA, rest: 0x60000000, daddr: 'ff02::1', body: Uint8Array.of(...nsTarget('2001:db8:1::7')) })],
    ['echo request', buildIcmp({ ...base, icmpType: 128, body: Uint8Array.of(...nsTarget('2001:db8:1::7')) })],
  ];
  for (const [why, f] of bad) t.notOk(readNd(f, 0, f.length, v), why);
  t.notOk(readNd(ok, 0, ok.length - 1, v), 'cut short');
});

/** The solicitations a drain writes: [eth dst, IPv6 src, IPv6 dst, target, ifindex]. */
function solicitations(n: NeighbourCache): string[][] {
  const tx = new TxQueue(16);
  n.drainRequests(tx);
  const v = new NdView();
  const out: string[][] = [];
  for (let i = 0; i < tx.count; i++) {
    if (!readNd(tx.buf, tx.off[i]!, tx.len[i]!, v) || v.type !== ND_NS) throw new Error('not a solicitation');
    out.push([formatMac(tx.buf, tx.off[i]!), addrAt(tx.buf, v.srcOff), addrAt(tx.buf, v.dstOff), addrAt(tx.buf, v.targetOff), String(tx.ifindex[i])]);
  }
  return out;
}

/** A neighbour's advertisement for `who` at `m` (solicited, override unless said otherwise), seen on `ifindex`. */
function advertise(n: NeighbourCache, who: string, m: string, ifindex: number, flags = NA_F_SOLICITED | NA_F_OVERRIDE): void {
  const f = buildIcmp({
    srcMac: m, dstMac: ifindex === 2 ? MAC0 : MAC1, saddr: who, daddr: ifindex === 2 ? '2001:db8:1::fe' : '2001:db8:2::fe', ttl: 255,
    icmpType: ND_NA, rest: (flags << 24) >>> 0, body: Uint8Array.of(...nsTarget(who), 2, 1, ...mac(m)),
  });
  n.observeNd(f, 0, f.length, ifindex, false);
}

function cache(extra: Partial<ConstructorParameters<typeof NeighbourCache>[0]> = {}): NeighbourCache {
  return new NeighbourCache({ ifaces: [ETH0, ETH1], routes: new RouteTable4([]), routes6: ROUTES6, ...extra });
}

t.test('resolve (IPv6): solicit, wait, learn, then answer from the cache', async (t) => {
  const n = cache();
  const out = new Uint8Array(6);
  t.notOk(n.resolve(6, A('2001:db8:1::7'), out, 0), 'unknown on-link host: not resolved yet');
  t.same(solicitations(n), [['33:33:ff:00:00:07', '2001:db8:1::fe', 'ff02::1:ff00:7', '2001:db8:1::7', '2']],
    'one solicitation to its solicited-node group, from our address on its prefix, out of eth0');
  t.notOk(n.resolve(6, A('2001:db8:1::7'), out, 0), 'still waiting');
  t.same(solicitations(n), [], 'no second solicitation before the retransmit time');
  const v0 = n.version;
  advertise(n, '2001:db8:1::7', '02:00:00:00:00:07', 2);
  t.ok(n.version > v0, 'version bumped: per-destination caches refresh');
  t.ok(n.resolve(6, A('2001:db8:1::7'), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:07');
  t.equal(n.egressFor(out, 0), 2, 'frames to that MAC leave eth0');

  t.notOk(n.resolve(6, A('2001:db8:99::1'), out, 0), 'off-link destination: resolve the gateway');
  t.same(solicitations(n), [['33:33:ff:00:00:01', 'fe80::11', 'ff02::1:ff00:1', 'fe80::1', '3']],
    'asks for the link-local default router on eth1, from our link-local address');
  advertise(n, 'fe80::1', '02:00:00:00:00:01', 3);
  t.ok(n.resolve(6, A('2001:db8:99::1'), out, 0));
  t.ok(n.resolve(6, A('2001:db8:77::1'), out, 0), 'every destination behind the router shares its entry');
  t.equal(formatMac(out), '02:00:00:00:00:01');
  t.equal(n.egressFor(out, 0), 3);
  advertise(n, 'fe80::1', '02:00:00:00:00:66', 2);
  t.ok(n.resolve(6, A('2001:db8:99::1'), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:01', 'fe80::1 on another link is another neighbour (and unknown there)');

  t.same(n.entries().map((e) => [e.ip, e.mac, e.ifname, e.state]), [
    ['2001:db8:1::7', '02:00:00:00:00:07', 'eth0', 'REACHABLE'], ['fe80::1', '02:00:00:00:00:01', 'eth1', 'REACHABLE'],
  ], 'the IPv6 entries are listed with the IPv4 ones');
  const lonely = new NeighbourCache({ ifaces: [ETH0], routes: new RouteTable4([]), routes6: ROUTES6 });
  t.notOk(lonely.resolve(6, A('2001:db8:99::1'), out, 0), 'the route leaves through an interface we do not serve');
  t.equal(lonely.stats.noRoute, 1);
  const none = new NeighbourCache({ ifaces: [{ ...ETH0, ip6: [] }], routes: new RouteTable4([]) });
  t.notOk(none.resolve(6, A('2001:db8:1::7'), out, 0), 'no IPv6 address on a served interface: no IPv6 route by default');
  const onlink = new NeighbourCache({ ifaces: [ETH0], routes: new RouteTable4([]) });
  onlink.resolve(6, A('2001:db8:1::9'), out, 0);
  t.same(solicitations(onlink).map((s) => s[3]), ['2001:db8:1::9'], 'default routes: the interfaces\' own prefixes, on-link');
});

t.test('learning from NDP the way the kernel does', async (t) => {
  const n = cache();
  const out = new Uint8Array(6);
  const solicit = (from: string, m: string, target: string): void => {
    const f = buildIcmp({
      srcMac: m, dstMac: '33:33:ff:00:00:fe', saddr: from, daddr: 'ff02::1:ff00:fe', ttl: 255, icmpType: ND_NS,
      body: Uint8Array.of(...nsTarget(target), 1, 1, ...mac(m)),
    });
    n.observeNd(f, 0, f.length, 2, false);
  };
  solicit('2001:db8:1::20', '02:00:00:00:00:20', '2001:db8:1::99');
  t.notOk(n.resolve(6, A('2001:db8:1::20'), out, 0), 'a solicitation for someone else teaches nothing new');
  solicitations(n);
  solicit('2001:db8:1::21', '02:00:00:00:00:21', '2001:db8:1::fe');
  t.ok(n.resolve(6, A('2001:db8:1::21'), out, 0), 'a solicitation for one of our addresses creates the asker\'s entry');
  solicit('fe80::22', '02:00:00:00:00:22', 'fe80::10');
  t.equal(n.entries().find((e) => e.ip === 'fe80::22')?.state, 'REACHABLE', 'link-local askers too');
  advertise(n, '2001:db8:1::23', '02:00:00:00:00:23', 2);
  t.notOk(n.resolve(6, A('2001:db8:1::23'), out, 0), 'an advertisement for an unknown neighbour does not create an entry');
  solicitations(n);
  // A solicitation for a VIP that the engine answered in place: the asker is now the destination.
  const sol = buildIcmp({
    srcMac: '02:00:00:00:00:24', dstMac: '33:33:ff:00:01:00', saddr: '2001:db8:1::24', daddr: 'ff02::1:ff00:100', ttl: 255,
    icmpType: ND_NS, body: Uint8Array.of(...nsTarget('2001:db8:1::100'), 1, 1, ...mac('02:00:00:00:00:24')),
  });
  const v = new NdView();
  t.ok(readNd(sol, 0, sol.length, v));
  const len = answerNs(sol, 0, v, mac(MAC0));
  n.observeNd(sol, 0, len, 2, true);
  t.ok(n.resolve(6, A('2001:db8:1::24'), out, 0), 'the asker of a VIP is learned');
  t.equal(formatMac(out), '02:00:00:00:00:24');
  // Known neighbours moving: with Override the new MAC is taken, without it the old one stays.
  advertise(n, '2001:db8:1::21', '02:00:00:00:00:31', 2, 0);
  n.resolve(6, A('2001:db8:1::21'), out, 0);
  t.equal(formatMac(out), '02:00:00:00:00:21', 'no Override: a known MAC is kept');
  const ver = n.version;
  const una = new Uint8Array(86);
  writeUnsolicitedNa(una, 0, mac('02:00:00:00:00:99'), W('2001:db8:1::21'));
  n.observeNd(una, 0, 86, 2, false);
  t.ok(n.version > ver);
  n.resolve(6, A('2001:db8:1::21'), out, 0);
  t.equal(formatMac(out), '02:00:00:00:00:99', 'an unsolicited advertisement with Override moves it');
  // Our own addresses are never neighbours.
  advertise(n, '2001:db8:1::fe', '02:00:00:00:00:98', 2);
  t.notOk(n.entries().some((e) => e.ip === '2001:db8:1::fe'));
});

t.test('ageing (IPv6): stale entries are re-probed by unicast, silent ones dropped; unanswered ones fail', async (t) => {
  const n = cache({ ifaces: [ETH0], reachableTime: 30, retransTime: 1, probes: 3, gcTime: 10 });
  const out = new Uint8Array(6);
  n.now = 100;
  n.resolve(6, A('2001:db8:1::7'), out, 0);
  solicitations(n);
  advertise(n, '2001:db8:1::7', '02:00:00:00:00:07', 2);
  n.tick(129);
  t.same(solicitations(n), [], 'fresh for 30 s');
  n.tick(130);
  t.same(solicitations(n).map((s) => [s[0], s[2]]), [['02:00:00:00:00:07', '2001:db8:1::7']], 'then a unicast probe');
  t.ok(n.resolve(6, A('2001:db8:1::7'), out, 0), 'still used while being re-probed');
  n.tick(131); solicitations(n);
  n.tick(132); solicitations(n);
  const v = n.version;
  n.tick(133);
  t.ok(n.version > v, 'dropped after three silent probes');
  t.notOk(n.resolve(6, A('2001:db8:1::7'), out, 0), 'and resolved again from scratch');
  t.same(solicitations(n).map((s) => s[0]), ['33:33:ff:00:00:07']);
  n.tick(134); t.equal(solicitations(n).length, 1);
  n.tick(135); t.equal(solicitations(n).length, 1);
  n.tick(136); t.equal(solicitations(n).length, 0, 'gave up after three solicitations');
  t.equal(n.stats.failed, 1);
  t.same(n.entries().map((e) => [e.ip, e.state]), [['2001:db8:1::7', 'FAILED']]);
  n.now = 136.5;
  t.notOk(n.resolve(6, A('2001:db8:1::7'), out, 0));
  t.equal(solicitations(n).length, 0, 'a failed entry is not asked again within the retransmit time');
  n.now = 137.5;
  t.notOk(n.resolve(6, A('2001:db8:1::7'), out, 0));
  t.equal(solicitations(n).length, 1, 'but a later frame tries again');
  for (const now of [138.5, 139.5, 140.5]) { n.tick(now); solicitations(n); }
  t.same(n.entries().map((e) => e.state), ['FAILED'], 'failed again');
  n.tick(152);
  t.same(n.entries(), [], 'and collected after gcTime');
  n.setRoutes6(new RouteTable6([]));
  t.notOk(n.resolve(6, A('2001:db8:1::7'), out, 0), 'new routes apply at once');
  t.equal(n.stats.noRoute, 1);
});

t.test('resolve does not allocate once cached (IPv4 and IPv6)', async (t) => {
  const n = cache();
  const out = new Uint8Array(6);
  n.resolve(6, A('2001:db8:1::7'), out, 0);
  solicitations(n);
  advertise(n, '2001:db8:1::7', '02:00:00:00:00:07', 2);
  const a = A('2001:db8:1::7');
  n.resolve(6, a, out, 0);
  // Warm up, then measure: a steady heap over a million lookups (allocation would show as growth or GC churn).
  for (let i = 0; i < 100_000; i++) n.resolve(6, a, out, 0);
  const before = process.memoryUsage().heapUsed;
  let ok = 0;
  for (let i = 0; i < 1_000_000; i++) if (n.resolve(6, a, out, 0)) ok++;
  const grew = process.memoryUsage().heapUsed - before;
  t.equal(ok, 1_000_000);
  t.ok(grew < 1_000_000, `heap grew ${grew} bytes over a million lookups`);
});

t.test('announcing IPv6 VIPs: once per address, on the interface of its prefix', async (t) => {
  // Which VIPs are new is counted per address by the data plane's HideTracker, per operation.
  const d = new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 1024 });
  const tracker = new HideTracker(d.table, d.marks);
  const api = d.api as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  const txt = (l: number[][]) => l.map((w) => formatIp6(w[0]!, w[1]!, w[2]!, w[3]!));
  const run = async (op: string, ...args: unknown[]): Promise<string[]> => {
    const scope = tracker.scope(op, args);
    await api[op]!(...args);
    tracker.change(scope);
    return txt(tracker.takeNewVip6());
  };
  const key = (addr: string, port: number, af: 4 | 6 = 6) => ({ af, protocol: 6, addr, port, fwmark: 0 });
  const spec = (k: ReturnType<typeof key>, sched = 'rr') =>
    ({ ...k, schedName: sched, flags: 0, timeout: 0, netmask: k.af === 6 ? '128' : '255.255.255.255', pe: '' });
  t.same(await run('addService', spec(key('2001:db8:1::100', 80))), ['2001:db8:1::100'], 'a new VIP');
  t.same(await run('addService', spec(key('2001:db8:1::100', 443))), [], 'a second port on it: already announced');
  t.same(await run('editService', spec(key('2001:db8:1::100', 80), 'wlc')), [], 'an edit re-adding the same share');
  t.same(await run('delService', key('2001:db8:1::100', 80)), [], 'deleted');
  t.same(await run('delService', key('2001:db8:1::100', 443)), [], 'deleted');
  await run('addService', spec(key('10.0.0.1', 80, 4)));
  t.same(await run('addService', spec(key('2001:db8:1::100', 80))), ['2001:db8:1::100'],
    'used again after it was released; IPv4 VIPs are not its business');
  t.same(tracker.takeNewVip6(), []);
  const tx = new TxQueue(8);
  t.equal(Vip6Announcer.write(tx, [ETH0, ETH1], [W('2001:db8:2::100'), W('2001:db8:7::1')]), 3, 'eth1 for its prefix, both for an unknown one');
  t.same(Array.from(tx.ifindex.subarray(0, tx.count)), [3, 2, 3]);
  const v = new NdView();
  t.ok(readNd(tx.buf, tx.off[0]!, tx.len[0]!, v));
  t.same([v.type, addrAt(tx.buf, v.targetOff), formatMac(tx.buf, tx.off[0]! + 6)], [ND_NA, '2001:db8:2::100', MAC1]);
});

judge.register(t);
