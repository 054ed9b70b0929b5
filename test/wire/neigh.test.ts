/**
 * Next-hop resolution without a wire: the routing table reader and its lookup,
 * the ARP cache's state machine (ask, learn, age, re-probe, give up, evict) and
 * its per-route gateway cache, the ARP frames it writes, the static table of
 * `ulvs replay`, and the nftables rules derived from the services.
 */
import t from 'tap';
import { NeighbourCache, type NeighIface } from '../../src/neigh/cache.js';
import { RouteTable4, parseIpRouteJson, parseProcNetRoute, type Route4 } from '../../src/neigh/routes.js';
import { StaticNeighbours } from '../../src/neigh/static.js';
import { ArpView, readArp, writeGratuitousArp } from '../../src/neigh/arp.js';
import { TxQueue } from '../../src/io/batch.js';
import { buildArp } from '../../src/packet/build.js';
import { parseIp, parseIp4, formatIp4 } from '../../src/util/ip.js';
import { formatMac, parseMac } from '../../src/util/mac.js';
import { hideRules } from '../../src/io/kernel-guard.js';

const ip = (s: string): number => parseIp4(s)!;
const A = (s: string): Uint32Array => Uint32Array.of(ip(s), 0, 0, 0);

const PROC_ROUTE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth1\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t0500000A\t0100000A\t0007\t0\t0\t0\tFFFFFFFF\t0\t0\t0
eth0\t0000000B\t00000000\t0201\t0\t0\t0\t0000FFFF\t0\t0\t0
`;

t.test('routes: /proc/net/route and ip -j route, longest prefix first', async (t) => {
  const routes = parseProcNetRoute(PROC_ROUTE);
  t.equal(routes.length, 4, 'the reject route is left out');
  const rt = new RouteTable4(routes);
  const hop = (d: string) => { const r = rt.lookup(ip(d)); return r === null ? null : [r.ifname, r.gateway === 0 ? 'on-link' : formatIp4(r.gateway)]; };
  t.same(hop('10.0.0.7'), ['eth0', 'on-link']);
  t.same(hop('10.0.0.5'), ['eth0', '10.0.0.1'], 'a host route beats its subnet');
  t.same(hop('192.168.1.20'), ['eth1', 'on-link']);
  t.same(hop('8.8.8.8'), ['eth1', '192.168.1.1'], 'default route');
  const json = JSON.stringify([
    { dst: 'default', gateway: '192.168.1.1', dev: 'eth1', flags: [] },
    { dst: '10.0.0.0/24', dev: 'eth0', protocol: 'kernel', scope: 'link', prefsrc: '10.0.0.254', flags: [] },
    { dst: '10.0.0.5', gateway: '10.0.0.1', dev: 'eth0', flags: [] },
    { type: 'blackhole', dst: '11.0.0.0/16', flags: [] },
    { dst: '12.0.0.0/8', nexthops: [{ gateway: '10.0.0.9', dev: 'eth0' }, { gateway: '10.0.0.8', dev: 'eth0' }], flags: [] },
  ]);
  const rt2 = new RouteTable4(parseIpRouteJson(json));
  t.same(rt2.list().map((r) => `${formatIp4(r.dst)}/${r.prefix}>${formatIp4(r.gateway)}@${r.ifname}`),
    ['10.0.0.5/32>10.0.0.1@eth0', '10.0.0.0/24>0.0.0.0@eth0', '12.0.0.0/8>10.0.0.9@eth0', '0.0.0.0/0>192.168.1.1@eth1']);
});

t.test('routes: the lookup by first octet agrees with a plain longest-prefix walk', async (t) => {
  // Reference: every matching route, longest prefix first, then lowest metric, then input order.
  const ref = (routes: Route4[], d: number): Route4 | null => {
    let best: Route4 | null = null;
    for (const r of routes) {
      const mask = r.prefix === 0 ? 0 : (0xffffffff << (32 - r.prefix)) >>> 0;
      if (((d & mask) >>> 0) !== r.dst) continue;
      if (best === null || r.prefix > best.prefix || (r.prefix === best.prefix && r.metric < best.metric)) best = r;
    }
    return best;
  };
  let x = 7;
  const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  const bad: string[] = [];
  for (let round = 0; round < 50; round++) {
    const routes: Route4[] = [];
    if (round % 3 !== 0) routes.push({ dst: 0, prefix: 0, gateway: ip('192.168.1.1'), ifname: 'eth1', metric: 100 });
    const n = 1 + (rnd() % 12);
    for (let i = 0; i < n; i++) {
      // Few first octets, so prefixes nest and tie; some /8 and shorter ones cover whole buckets.
      const prefix = [4, 8, 8, 12, 16, 24, 24, 32][rnd() % 8]!;
      const mask = (0xffffffff << (32 - prefix)) >>> 0;
      const dst = (((10 + (rnd() % 3)) << 24 | (rnd() & 0x0301ff03)) & mask) >>> 0;
      routes.push({ dst, prefix, gateway: rnd() % 2 === 0 ? 0 : ip('10.0.0.1'), ifname: `eth${i}`, metric: rnd() % 3 });
    }
    const rt = new RouteTable4(routes);
    for (let k = 0; k < 2000; k++) {
      const d = k < 1000 ? (((10 + (rnd() % 3)) << 24) | (rnd() & 0x0301ff03)) >>> 0 : rnd();
      const want = ref(routes, d);
      const got = rt.lookup(d);
      // (Equal prefix and metric: either may win, as with the kernel's insertion order.)
      const same = got === want || (got !== null && want !== null && got.prefix === want.prefix && got.metric === want.metric && got.dst === want.dst);
      if (!same || rt.indexOf(d) !== (got === null ? -1 : rt.list().indexOf(got))) {
        bad.push(`round ${round}: ${formatIp4(d)} took ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
      }
    }
  }
  t.same(bad.slice(0, 3), [], '100,000 lookups in 50 random tables agree');
  const rt = new RouteTable4([
    { dst: 0, prefix: 0, gateway: ip('192.168.1.1'), ifname: 'eth1', metric: 100 },
    { dst: 0, prefix: 0, gateway: ip('192.168.1.2'), ifname: 'eth1', metric: 50 },
    { dst: ip('10.0.0.0'), prefix: 8, gateway: ip('192.168.1.3'), ifname: 'eth1', metric: 0 },
    { dst: ip('10.9.0.0'), prefix: 16, gateway: 0, ifname: 'eth0', metric: 0 },
  ]);
  t.equal(formatIp4(rt.lookup(ip('8.8.8.8'))!.gateway), '192.168.1.2', 'equal prefixes: the lowest metric');
  t.equal(formatIp4(rt.lookup(ip('10.1.2.3'))!.gateway), '192.168.1.3', 'a /8 beats the default');
  t.equal(rt.lookup(ip('10.9.2.3'))!.ifname, 'eth0', 'a /16 inside that /8 beats it');
  t.equal(new RouteTable4([{ dst: ip('10.9.0.0'), prefix: 16, gateway: 0, ifname: 'eth0', metric: 0 }]).lookup(ip('10.8.0.1')), null, 'no default: no route');
});

t.test('static table: open addressing, gateway fallback, MAC words', async (t) => {
  const n = new StaticNeighbours();
  const out = new Uint8Array(16);
  t.notOk(n.resolve(4, A('10.0.0.1'), out, 0), 'empty, no gateway: unresolved');
  // Addresses sharing a home slot of the first (16-slot) table: probe chains, and misses behind them.
  const home = (s: string): number => Math.imul(ip(s), 0x9e3779b1) >>> 28;
  const same: string[] = [];
  for (let i = 1; same.length < 4; i++) if (home(`10.0.0.${i}`) === home('10.0.0.1') || i === 1) same.push(`10.0.0.${i}`);
  n.set(parseIp(same[0]!)!, parseMac('02:00:00:00:00:01')!);
  n.set(parseIp(same[1]!)!, parseMac('02:00:00:00:00:02')!);
  const v = n.version;
  n.set(parseIp('0.0.0.0')!, parseMac('02:00:00:00:00:00')!);
  t.ok(n.version > v, 'version bumped by set');
  t.ok(n.resolve(4, A(same[1]!), out, 3));
  t.equal(formatMac(out, 3), '02:00:00:00:00:02', `${same[1]} found past ${same[0]} (same home slot)`);
  t.ok(n.resolve(4, A('0.0.0.0'), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:00', '0.0.0.0 is a key like any other');
  t.notOk(n.resolve(4, A(same[2]!), out, 0), `${same[2]} (same home slot, absent): unresolved without a gateway`);
  const gv = n.version;
  n.setGateway(parseMac('02:00:00:00:00:fe')!);
  t.ok(n.version > gv, 'version bumped by setGateway');
  t.ok(n.resolve(4, A(same[2]!), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:fe', 'not configured: the gateway');
  t.ok(n.resolve(4, A('203.0.113.9'), out, 10));
  t.equal(formatMac(out, 10), '02:00:00:00:00:fe');
  n.set(parseIp(same[0]!)!, parseMac('02:00:00:00:00:a1')!);
  t.ok(n.resolve(4, A(same[0]!), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:a1', 'set again: the new MAC');
  // Growth: a thousand entries (the table rehashes), each found, the rest still go to the gateway.
  const macOf = (i: number): Uint8Array => Uint8Array.of(0x02, 0xff, 0x10, i >> 16, (i >> 8) & 0xff, i & 0xff);
  for (let i = 0; i < 1000; i++) n.set(parseIp(formatIp4(ip('172.16.0.0') + i * 7))!, macOf(i));
  let bad = 0;
  for (let i = 0; i < 1000; i++) {
    if (!n.resolve(4, A(formatIp4(ip('172.16.0.0') + i * 7)), out, 0) || formatMac(out) !== formatMac(macOf(i))) bad++;
    if (!n.resolve(4, A(formatIp4(ip('172.16.0.0') + i * 7 + 1)), out, 0) || formatMac(out) !== '02:00:00:00:00:fe') bad++;
  }
  t.equal(bad, 0, 'a thousand entries after growing; their neighbours are not configured');
  t.ok(n.resolve(4, A(same[1]!), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:02', 'entries made before growing survive it');
  const mac = parseMac('02:00:00:00:00:33')!;
  n.set(parseIp('10.0.0.33')!, mac);
  mac[5] = 0x44;
  t.ok(n.resolve(4, A('10.0.0.33'), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:33', 'the MAC is copied when set');
  // IPv6: exact match, else the gateway.
  const v6 = parseIp('2001:db8::7')!;
  n.set(v6, parseMac('02:00:00:00:06:07')!);
  t.ok(n.resolve(6, Uint32Array.of(v6.w0, v6.w1, v6.w2, v6.w3), out, 0));
  t.equal(formatMac(out), '02:00:00:00:06:07');
  t.ok(n.resolve(6, Uint32Array.of(v6.w0, v6.w1, v6.w2, v6.w3 + 1), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:fe', 'IPv6 not configured: the gateway');
  n.setGateway(null);
  t.notOk(n.resolve(4, A('203.0.113.9'), out, 0), 'gateway removed: unresolved');
  t.notOk(n.resolve(6, Uint32Array.of(v6.w0, v6.w1, v6.w2, v6.w3 + 1), out, 0));
  t.ok(n.resolve(4, A('0.0.0.0'), out, 0), 'configured ones still resolve');
});

const ETH0: NeighIface = { index: 2, name: 'eth0', mac: parseMac('02:00:00:00:00:10')!, ip4: ip('10.0.0.254'), prefix: 24 };
const ETH1: NeighIface = { index: 3, name: 'eth1', mac: parseMac('02:00:00:00:00:11')!, ip4: ip('192.168.1.254'), prefix: 24 };
const ROUTES = new RouteTable4(parseProcNetRoute(PROC_ROUTE));

function requests(n: NeighbourCache): Array<{ to: string; target: string; from: string; ifindex: number }> {
  const tx = new TxQueue(16);
  n.drainRequests(tx);
  const v = new ArpView();
  const out = [];
  for (let i = 0; i < tx.count; i++) {
    readArp(tx.buf, tx.off[i]!, tx.len[i]!, v);
    out.push({ to: formatMac(tx.buf, tx.off[i]!), target: formatIp4(v.tpa), from: `${formatMac(tx.buf, v.shaOff)} ${formatIp4(v.spa)}`, ifindex: tx.ifindex[i]! });
  }
  return out;
}

function reply(n: NeighbourCache, who: string, mac: string, ifindex: number): void {
  const f = buildArp({ op: 'reply', srcMac: mac, dstMac: '02:00:00:00:00:10', senderMac: mac, senderIp: who, targetMac: '02:00:00:00:00:10', targetIp: '10.0.0.254' });
  n.observeArp(f, 0, f.length, ifindex, false);
}

t.test('resolve: ask, wait, learn, then answer from the cache', async (t) => {
  const n = new NeighbourCache({ ifaces: [ETH0, ETH1], routes: ROUTES });
  const out = new Uint8Array(6);
  t.notOk(n.resolve(4, A('10.0.0.7'), out, 0), 'unknown on-link host: not resolved yet');
  t.same(requests(n), [{ to: 'ff:ff:ff:ff:ff:ff', target: '10.0.0.7', from: '02:00:00:00:00:10 10.0.0.254', ifindex: 2 }], 'one broadcast who-has, from eth0');
  t.notOk(n.resolve(4, A('10.0.0.7'), out, 0), 'still waiting');
  t.same(requests(n), [], 'no second request before the retransmit time');
  const v0 = n.version;
  reply(n, '10.0.0.7', '02:00:00:00:00:07', 2);
  t.ok(n.version > v0, 'version bumped: per-destination caches refresh');
  t.ok(n.resolve(4, A('10.0.0.7'), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:07');
  t.equal(n.egressFor(out, 0), 2, 'frames to that MAC leave eth0');

  t.notOk(n.resolve(4, A('8.8.8.8'), out, 0), 'off-link destination: resolve the gateway');
  t.same(requests(n).map((r) => [r.target, r.ifindex]), [['192.168.1.1', 3]], 'asks for the default gateway on eth1');
  reply(n, '192.168.1.1', '02:00:00:00:00:01', 3);
  t.ok(n.resolve(4, A('8.8.8.8'), out, 0));
  t.ok(n.resolve(4, A('9.9.9.9'), out, 0), 'every destination behind the gateway shares its entry');
  t.equal(formatMac(out), '02:00:00:00:00:01');
  t.equal(n.egressFor(out, 0), 3);

  const before = n.stats.noRoute;
  const lonely = new NeighbourCache({ ifaces: [ETH0], routes: new RouteTable4(parseProcNetRoute(PROC_ROUTE).filter((r) => r.ifname === 'eth0')) });
  t.notOk(lonely.resolve(4, A('8.8.8.8'), out, 0), 'no route through a served interface');
  t.equal(lonely.stats.noRoute, 1);
  t.equal(n.stats.noRoute, before);
  t.notOk(n.resolve(6, Uint32Array.of(0x20010db8, 0, 0, 1), out, 0), 'IPv6: no IPv6 address on a served interface, so no IPv6 route (NDP: ndp.test.ts)');
});

t.test('learning from ARP the way the kernel does', async (t) => {
  const n = new NeighbourCache({ ifaces: [ETH0, ETH1], routes: ROUTES });
  const out = new Uint8Array(6);
  const req = (from: string, mac: string, target: string) => {
    const f = buildArp({ op: 'request', srcMac: mac, senderMac: mac, senderIp: from, targetIp: target });
    n.observeArp(f, 0, f.length, 2, false);
  };
  req('10.0.0.20', '02:00:00:00:00:20', '10.0.0.99');
  t.notOk(n.resolve(4, A('10.0.0.20'), out, 0), 'a request for someone else teaches nothing new');
  requests(n);
  req('10.0.0.21', '02:00:00:00:00:21', '10.0.0.254');
  t.ok(n.resolve(4, A('10.0.0.21'), out, 0), 'a request for one of our addresses creates the asker\'s entry');
  const unsolicited = buildArp({ op: 'reply', srcMac: '02:00:00:00:00:22', senderMac: '02:00:00:00:00:22', senderIp: '10.0.0.22', targetIp: '10.0.0.254' });
  n.observeArp(unsolicited, 0, unsolicited.length, 2, false);
  t.notOk(n.resolve(4, A('10.0.0.22'), out, 0), 'an unsolicited reply does not create an entry');
  requests(n);
  // A request for a VIP that the engine answered in place: the asker is now the target.
  const answered = buildArp({ op: 'reply', srcMac: '02:00:00:00:00:10', senderMac: '02:00:00:00:00:10', senderIp: '10.0.0.100', targetMac: '02:00:00:00:00:23', targetIp: '10.0.0.23' });
  n.observeArp(answered, 0, answered.length, 2, true);
  t.ok(n.resolve(4, A('10.0.0.23'), out, 0), 'the asker of a VIP is learned');
  t.equal(formatMac(out), '02:00:00:00:00:23');
  // A known host moving to another MAC (gratuitous ARP) is followed.
  const garp = new Uint8Array(60);
  writeGratuitousArp(garp, 0, parseMac('02:00:00:00:00:99')!, ip('10.0.0.21'));
  const v = n.version;
  n.observeArp(garp, 0, 60, 2, false);
  t.ok(n.version > v);
  t.ok(n.resolve(4, A('10.0.0.21'), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:99', 'updated by gratuitous ARP');
});

t.test('ageing: stale entries are re-probed, silent ones dropped; unanswered ones fail', async (t) => {
  const n = new NeighbourCache({ ifaces: [ETH0], routes: ROUTES, reachableTime: 30, retransTime: 1, probes: 3, gcTime: 10 });
  const out = new Uint8Array(6);
  n.now = 100;
  n.resolve(4, A('10.0.0.7'), out, 0);
  requests(n);
  reply(n, '10.0.0.7', '02:00:00:00:00:07', 2);
  n.tick(129);
  t.same(requests(n), [], 'fresh for 30 s');
  n.tick(130);
  t.same(requests(n).map((r) => r.to), ['02:00:00:00:00:07'], 'then a unicast probe');
  t.ok(n.resolve(4, A('10.0.0.7'), out, 0), 'still used while being re-probed');
  n.tick(131); requests(n);
  n.tick(132); requests(n);
  const v = n.version;
  n.tick(133);
  t.ok(n.version > v, 'dropped after three silent probes');
  t.notOk(n.resolve(4, A('10.0.0.7'), out, 0), 'and resolved again from scratch');
  t.same(requests(n).map((r) => r.to), ['ff:ff:ff:ff:ff:ff']);
  // Nobody answers: two more tries a second apart, then FAILED (no more requests until retried).
  n.tick(134); t.equal(requests(n).length, 1);
  n.tick(135); t.equal(requests(n).length, 1);
  n.tick(136); t.equal(requests(n).length, 0, 'gave up after three requests');
  t.equal(n.stats.failed, 1);
  t.same(n.entries().map((e) => [e.ip, e.state]), [['10.0.0.7', 'FAILED']]);
  n.now = 136.5;
  t.notOk(n.resolve(4, A('10.0.0.7'), out, 0));
  t.equal(requests(n).length, 0, 'a failed entry is not asked again within the retransmit time');
  n.now = 137.5;
  t.notOk(n.resolve(4, A('10.0.0.7'), out, 0));
  t.equal(requests(n).length, 1, 'but a later frame tries again');
});

t.test('bounded: the least recently confirmed entry makes room', async (t) => {
  const n = new NeighbourCache({ ifaces: [ETH0], routes: ROUTES, capacity: 4 });
  const out = new Uint8Array(6);
  for (let i = 1; i <= 4; i++) {
    n.resolve(4, A(`10.0.0.${i}`), out, 0);
    reply(n, `10.0.0.${i}`, `02:00:00:00:00:0${i}`, 2);
  }
  reply(n, '10.0.0.1', '02:00:00:00:00:01', 2); // 10.0.0.1 confirmed again: 10.0.0.2 is now the oldest
  n.resolve(4, A('10.0.0.6'), out, 0); // (10.0.0.5 has a host route via 10.0.0.1 in ROUTES)
  t.equal(n.size, 4);
  t.same(n.entries().map((e) => e.ip).sort(), ['10.0.0.1', '10.0.0.3', '10.0.0.4', '10.0.0.6']);
  t.notOk(n.resolve(4, A('10.0.0.2'), out, 0), 'the evicted entry must be resolved again');
});

t.test('per-route gateway cache: shared per route, refreshed when routes or entries change', async (t) => {
  const routes = (gw: string): RouteTable4 => new RouteTable4([
    { dst: 0, prefix: 0, gateway: ip('192.168.1.1'), ifname: 'eth1', metric: 0 },
    { dst: ip('12.0.0.0'), prefix: 8, gateway: ip(gw), ifname: 'eth0', metric: 0 },
    { dst: ip('12.34.0.0'), prefix: 16, gateway: 0, ifname: 'eth0', metric: 0 },
    { dst: ip('12.34.5.6'), prefix: 32, gateway: ip('192.168.1.2'), ifname: 'eth1', metric: 0 },
    { dst: ip('10.0.0.0'), prefix: 24, gateway: 0, ifname: 'eth0', metric: 0 },
    { dst: ip('192.168.1.0'), prefix: 24, gateway: 0, ifname: 'eth1', metric: 0 },
    { dst: ip('13.0.0.0'), prefix: 8, gateway: ip('10.0.0.1'), ifname: 'eth9', metric: 0 },
  ]);
  const n = new NeighbourCache({ ifaces: [ETH0, ETH1], routes: routes('10.0.0.1') });
  const out = new Uint8Array(6);
  const hop = (d: string): string | null => (n.resolve(4, A(d), out, 0) ? formatMac(out) : null);
  t.equal(hop('8.8.8.8'), null);
  t.equal(hop('12.1.1.1'), null);
  t.equal(hop('12.34.0.9'), null);
  t.equal(hop('12.34.5.6'), null);
  t.same(requests(n).map((r) => [r.target, r.ifindex]).sort(),
    [['10.0.0.1', 2], ['12.34.0.9', 2], ['192.168.1.1', 3], ['192.168.1.2', 3]], 'each route asks for its own next hop');
  reply(n, '192.168.1.1', '02:00:00:00:01:01', 3);
  reply(n, '192.168.1.2', '02:00:00:00:01:02', 3);
  reply(n, '10.0.0.1', '02:00:00:00:00:01', 2);
  reply(n, '12.34.0.9', '02:00:00:00:00:09', 2);
  t.equal(hop('8.8.8.8'), '02:00:00:00:01:01', 'default route: its gateway');
  t.equal(hop('9.9.9.9'), '02:00:00:00:01:01');
  t.equal(hop('12.1.1.1'), '02:00:00:00:00:01', 'a /8 through another gateway beats the default');
  t.equal(hop('12.200.1.1'), '02:00:00:00:00:01');
  t.equal(hop('12.34.0.9'), '02:00:00:00:00:09', 'an on-link /16 inside it: the destination itself');
  t.equal(hop('12.34.0.10'), null, 'another host of that /16 is asked for, not sent to a gateway');
  t.equal(hop('12.34.5.6'), '02:00:00:00:01:02', 'a host route beats them all');
  t.equal(hop('192.168.1.1'), '02:00:00:00:01:01', 'the gateway itself, on-link: the same entry');
  const noRoute = n.stats.noRoute;
  const unresolved = n.stats.unresolved;
  t.equal(hop('13.1.1.1'), null, 'a route through an interface we do not serve');
  t.equal(hop('13.1.1.2'), null);
  t.equal(n.stats.noRoute - noRoute, 2, 'noRoute counted per frame');
  t.equal(n.stats.unresolved - unresolved, 2, 'and unresolved too');

  // A gateway changes MAC: every destination behind it follows at once.
  const garp = new Uint8Array(60);
  writeGratuitousArp(garp, 0, parseMac('02:00:00:00:01:99')!, ip('192.168.1.1'));
  n.observeArp(garp, 0, 60, 3, false);
  t.equal(hop('8.8.8.8'), '02:00:00:00:01:99', 'gratuitous ARP from the gateway');
  t.equal(hop('9.9.9.9'), '02:00:00:00:01:99');

  // Routes change: 12/8 now goes through 10.0.0.2 (unknown yet), the rest as before.
  requests(n);
  const v = n.version;
  n.setRoutes(routes('10.0.0.2'));
  t.ok(n.version > v, 'version bumped by new routes');
  t.equal(hop('12.1.1.1'), null, 'the new gateway must be resolved first');
  t.same(requests(n).map((r) => r.target), ['10.0.0.2']);
  reply(n, '10.0.0.2', '02:00:00:00:00:02', 2);
  t.equal(hop('12.1.1.1'), '02:00:00:00:00:02');
  t.equal(hop('8.8.8.8'), '02:00:00:00:01:99', 'the default route\'s gateway is still known');
  n.setRoutes(new RouteTable4([{ dst: ip('10.0.0.0'), prefix: 24, gateway: 0, ifname: 'eth0', metric: 0 }]));
  t.equal(hop('8.8.8.8'), null, 'default route gone: no route');
  t.equal(hop('10.0.0.1'), '02:00:00:00:00:01', 'on-link entries kept');
});

t.test('per-route gateway cache: a gateway that goes silent is dropped and asked for again', async (t) => {
  const n = new NeighbourCache({ ifaces: [ETH0, ETH1], routes: ROUTES, reachableTime: 30, retransTime: 1, probes: 3, gcTime: 10 });
  const out = new Uint8Array(6);
  n.now = 100;
  n.resolve(4, A('8.8.8.8'), out, 0);
  requests(n);
  reply(n, '192.168.1.1', '02:00:00:00:00:01', 3);
  t.ok(n.resolve(4, A('8.8.8.8'), out, 0));
  for (let s = 130; s <= 132; s++) { n.tick(s); requests(n); }
  t.ok(n.resolve(4, A('1.1.1.1'), out, 0), 'STALE: still used while re-probed');
  n.tick(133);
  t.notOk(n.resolve(4, A('8.8.8.8'), out, 0), 'silent: dropped, so not used from the per-route cache');
  t.notOk(n.resolve(4, A('1.1.1.1'), out, 0));
  t.same(requests(n).map((r) => [r.to, r.target]), [['ff:ff:ff:ff:ff:ff', '192.168.1.1']], 'asked for again, once');
});

t.test('per-route gateway cache: a busy gateway stays recently used in a full table', async (t) => {
  const n = new NeighbourCache({ ifaces: [ETH0, ETH1], routes: ROUTES, capacity: 4 });
  const out = new Uint8Array(6);
  n.resolve(4, A('8.8.8.8'), out, 0);
  reply(n, '192.168.1.1', '02:00:00:00:00:01', 3);
  t.ok(n.resolve(4, A('8.8.8.8'), out, 0));
  for (let i = 1; i <= 3; i++) {
    n.resolve(4, A(`10.0.0.${i}`), out, 0);
    reply(n, `10.0.0.${i}`, `02:00:00:00:00:0${i + 1}`, 2);
  }
  t.ok(n.resolve(4, A('9.9.9.9'), out, 0), 'the gateway answers frames (from the per-route cache)');
  n.tick(1);
  n.resolve(4, A('10.0.0.6'), out, 0); // a fifth next hop: the least recently used entry goes
  t.same(n.entries().map((e) => e.ip).sort(), ['10.0.0.2', '10.0.0.3', '10.0.0.6', '192.168.1.1'], 'the gateway was marked used, 10.0.0.1 went');
  t.ok(n.resolve(4, A('9.9.9.9'), out, 0));
  t.equal(formatMac(out), '02:00:00:00:00:01');
});

t.test('nftables rules hide exactly the served traffic', async (t) => {
  const rules = hideRules({
    vips: [{ af: 4, proto: 6, addr: '10.0.0.100', port: 80 }, { af: 4, proto: 17, addr: '10.0.0.100', port: 0 }, { af: 6, proto: 132, addr: '2001:db8::1', port: 9 }],
    marks: [{ af: 4, proto: 0, addr: '10.1.0.0', prefix: 16, portLo: 1000, portHi: 2000 }],
    reals: [{ af: 4, proto: 6, addr: '10.0.1.1', port: 8080 }, { af: 4, proto: 6, addr: '10.0.1.1', port: 8080 }],
  });
  t.same(rules, [
    'ip daddr 10.0.0.100 meta l4proto tcp th dport 80 drop',
    'ip daddr 10.0.0.100 meta l4proto udp drop',
    'ip6 daddr 2001:db8::1 meta l4proto sctp th dport 9 drop',
    'ip daddr 10.1.0.0/16 meta l4proto tcp th dport 1000-2000 drop',
    'ip daddr 10.1.0.0/16 meta l4proto udp th dport 1000-2000 drop',
    'ip daddr 10.1.0.0/16 meta l4proto sctp th dport 1000-2000 drop',
    'ip saddr 10.0.1.1 meta l4proto tcp th sport 8080 fib daddr type != local drop',
  ], 'one rule per VIP:port, per fwmark match and protocol, per NAT real server (duplicates merged)');
});
