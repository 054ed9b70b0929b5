/**
 * NDP through process(): a Neighbor Solicitation for an IPv6 VIP is turned into the
 * advertisement in place — the answer a Linux host owning the VIP would give — and
 * anything else NDP (other targets, advertisements, invalid solicitations) is left to
 * the kernel. The solicitations come from the packet builder (not from ndp.ts), and
 * tshark judges every answer, checksum included.
 */
import t from 'tap';
import { buildIcmp } from '../../src/packet/build.js';
import { IP, MAC, Judge, director, only, outcome } from './helpers.js';
import { formatMac, parseMac } from '../../src/util/mac.js';
import { formatIp6, parseIp6 } from '../../src/util/ip.js';
import { rd16, rd32 } from '../../src/packet/bytes.js';

const judge = new Judge();

const RULES = `-A -t [${IP.vip6}]:80 -s rr
-a -t [${IP.vip6}]:80 -r [${IP.rs61}]:80 -g
`;

/** NS body: the target, then (unless `slla` is null) a source link-layer address option. */
function nsBody(target: string, slla: string | null): Uint8Array {
  const b = new Uint8Array(slla === null ? 16 : 24);
  const w = parseIp6(target)!;
  for (let i = 0; i < 4; i++) { b[4 * i] = w[i]! >>> 24; b[4 * i + 1] = w[i]! >>> 16; b[4 * i + 2] = w[i]! >>> 8; b[4 * i + 3] = w[i]!; }
  if (slla !== null) { b[16] = 1; b[17] = 1; b.set(parseMac(slla)!, 18); }
  return b;
}

function solicitedNode(target: string): string {
  const w = parseIp6(target)!;
  return formatIp6(0xff020000, 0, 1, (0xff000000 | (w[3]! & 0xffffff)) >>> 0);
}

function ns(target: string, o: { saddr?: string; ttl?: number; vlan?: number; slla?: string | null; l4Checksum?: 'bad' } = {}): Uint8Array {
  const unspec = o.saddr === '::';
  const w = parseIp6(target)!;
  return buildIcmp({
    srcMac: MAC.client, dstMac: `33:33:ff:${[(w[3]! >>> 16) & 0xff, (w[3]! >>> 8) & 0xff, w[3]! & 0xff].map((x) => x.toString(16).padStart(2, '0')).join(':')}`,
    vlan: o.vlan, saddr: o.saddr ?? IP.client6, daddr: solicitedNode(target), ttl: o.ttl ?? 255, icmpType: 135,
    body: nsBody(target, o.slla === undefined ? (unspec ? null : MAC.client) : o.slla), l4Checksum: o.l4Checksum,
  });
}

function naFields(f: Uint8Array, l3 = 14) {
  const l4 = l3 + 40;
  const addr = (o: number) => formatIp6(rd32(f, o), rd32(f, o + 4), rd32(f, o + 8), rd32(f, o + 12));
  return {
    ethDst: formatMac(f, 0), ethSrc: formatMac(f, 6), src: addr(l3 + 8), dst: addr(l3 + 24), hlim: f[l3 + 7],
    type: f[l4], flags: f[l4 + 4], target: addr(l4 + 8), opt: `${f[l4 + 24]}/${f[l4 + 25]} ${formatMac(f, l4 + 26)}`,
    plen: rd16(f, l3 + 4),
  };
}

t.test('a solicitation for an IPv6 VIP gets the advertisement, in place', async (t) => {
  const td = director();
  await td.rules(RULES);
  const s = td.send(ns(IP.vip6));
  t.same(outcome(s), { verdict: 'reply', reason: 'nd-reply', frames: 1 });
  const r = only(s);
  t.equal(r.length, 86, 'Ethernet + IPv6 + NA with a target link-layer option');
  t.same(naFields(r), {
    ethDst: MAC.client, ethSrc: MAC.dir, src: IP.vip6, dst: IP.client6, hlim: 255,
    type: 136, flags: 0x60, target: IP.vip6, opt: `2/1 ${MAC.dir}`, plen: 32,
  }, 'from the VIP at our MAC to the asker; Solicited and Override');
  judge.add('NA for the VIP', r, {
    'eth.dst': MAC.client, 'ipv6.src': IP.vip6, 'ipv6.dst': IP.client6, 'ipv6.hlim': '255', 'icmpv6.type': '136',
    'icmpv6.nd.na.target_address': IP.vip6, 'icmpv6.nd.na.flag.s': '1', 'icmpv6.nd.na.flag.o': '1',
    'icmpv6.nd.na.flag.r': '0', 'icmpv6.opt.linkaddr': MAC.dir,
  });

  const tagged = td.send(ns(IP.vip6, { vlan: 100 }));
  t.same(outcome(tagged), { verdict: 'reply', reason: 'nd-reply', frames: 1 }, 'tagged solicitation');
  const tr = only(tagged);
  t.equal(rd16(tr, 12), 0x8100, 'the answer keeps the 802.1Q tag');
  t.equal(rd16(tr, 14) & 0xfff, 100);
  t.equal(naFields(tr, 18).target, IP.vip6);
  judge.add('NA, VLAN 100', tr, { 'vlan.id': '100', 'icmpv6.type': '136', 'icmpv6.nd.na.target_address': IP.vip6 });

  // Duplicate address detection by someone else: the VIP is defended to all nodes (RFC 4861 7.2.4).
  const dad = td.send(ns(IP.vip6, { saddr: '::' }));
  t.same(outcome(dad), { verdict: 'reply', reason: 'nd-reply', frames: 1 }, 'DAD probe for the VIP');
  const dr = naFields(only(dad));
  t.same([dr.ethDst, dr.dst, dr.flags], ['33:33:00:00:00:01', 'ff02::1', 0x20], 'to all nodes, Override only');
  judge.add('NA defending the VIP', only(dad), { 'ipv6.dst': 'ff02::1', 'icmpv6.nd.na.flag.s': '0', 'icmpv6.nd.na.flag.o': '1' });
});

t.test('what is not answered: other targets, invalid solicitations, advertisements', async (t) => {
  const td = director();
  await td.rules(RULES);
  const pass = { verdict: 'pass', reason: 'nd-other', frames: 0 };
  t.same(outcome(td.send(ns('2001:db8:f::200'))), pass, 'another address');
  t.same(outcome(td.send(ns(IP.vip6, { ttl: 64 }))), pass, 'hop limit below 255 (routed: forged)');
  t.same(outcome(td.send(ns(IP.vip6, { l4Checksum: 'bad' }))), pass, 'bad checksum');
  t.same(outcome(td.send(ns(IP.vip6, { saddr: '::', slla: MAC.client }))), pass, 'unspecified source with a link-layer option');
  const na = buildIcmp({
    srcMac: MAC.client, dstMac: '33:33:00:00:00:01', saddr: IP.client6, daddr: 'ff02::1', ttl: 255, icmpType: 136,
    rest: 0x20000000, body: nsBody(IP.client6, null),
  });
  t.same(outcome(td.send(na)), pass, 'an advertisement is never answered');
  await td.ipvsadm('-D', '-t', `[${IP.vip6}]:80`);
  t.same(outcome(td.send(ns(IP.vip6))), pass, 'deleted service: VIP released');
});

judge.register(t);
