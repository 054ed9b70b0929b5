/**
 * tun-decap on a real server namespace: tunnelled TCP SYNs for the VIP (on lo) are
 * decapsulated into a TUN device, the listening socket answers with a SYN-ACK that
 * leaves the real server directly towards the client, and the kernel no longer
 * answers the outer packets with ICMP unreachables.
 *
 *   ns "d" (stands in for the director)  d0 10.9.0.1/24 fd09::1/64
 *        │ veth
 *   ns "rs" eth0 10.9.0.2/24 fd09::2/64, lo: VIP 10.9.9.100/32 and fd09:9::100/128,
 *        default routes via d0; HTTP server on :80; `tun-decap --gue-port 6080`
 * Clients 10.9.7.x / fd09:7::x are "remote": replies to them go back out of eth0.
 * Also a UDP GSO super-frame of GUE remcsum chunks (what a director with --tun-remcsum sends),
 * sent with a virtio_net_hdr: it crosses the veth whole and every datagram in it is answered.
 */
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { Lab, type LabProcess } from '../../src/lab/netns.js';
import { startNameServer } from '../../src/lab/servers.js';
import { AfPacketIo } from '../../src/io/afpacket.js';
import { FRAME_CSUM_NOT_READY, FRAME_GSO, GSO_UDP_L4, V_FORWARD } from '../../src/io/batch.js';
import { buildTcp, buildUdp, ipPacketOf } from '../../src/packet/build.js';
import { rd16, rd32 } from '../../src/packet/bytes.js';
import { formatIp4, formatIp6 } from '../../src/util/ip.js';
import { LAB_SKIP, collect, sendFrames, type Captured } from './helpers.js';
import { greFrame, gueFrame, gueGsoFrame, ipipFrame, type Outer } from './tunnel-frames.js';

const TUN_DECAP = fileURLToPath(new URL('../../src/lab/tun-decap-main.js', import.meta.url));
const VIP4 = '10.9.9.100';
const VIP6 = 'fd09:9::100';

function addrText(c: Captured, which: 'saddr' | 'daddr'): string {
  const w = c.info[which];
  return c.info.af === 4 ? formatIp4(w[0]!) : formatIp6(w[0]!, w[1]!, w[2]!, w[3]!);
}

t.test('userspace tunnel decapsulation into the real server\'s stack', LAB_SKIP, async (t) => {
  const lab = Lab.create('tun-decap');
  t.teardown(() => lab.teardown());
  // No duplicate address detection: a tentative fd09::1/fd09::2 (up to ~2 s after the veth comes
  // up) cannot answer or send neighbour solicitations, so the first IPv6 SYN-ACK could miss its window.
  const noDad = { 'net.ipv6.conf.all.accept_dad': 0, 'net.ipv6.conf.default.accept_dad': 0 };
  const d = await lab.addNs('d', noDad);
  await lab.addNs('rs', { ...noDad, 'net.ipv4.conf.all.arp_ignore': 1, 'net.ipv4.conf.all.arp_announce': 2 });
  await lab.veth({ ns: 'd', ifname: 'd0', addrs: ['10.9.0.1/24', 'fd09::1/64'] }, { ns: 'rs', ifname: 'eth0', addrs: ['10.9.0.2/24', 'fd09::2/64'] });
  await lab.addr('rs', 'lo', `${VIP4}/32`);
  await lab.addr('rs', 'lo', `${VIP6}/128`);
  await lab.route('rs', ['default', 'via', '10.9.0.1']);
  await lab.ip('rs', ['-6', 'route', 'add', 'default', 'via', 'fd09::1']);
  await startNameServer(lab, 'rs', { name: 'rs1', httpPort: 80, udpPort: 53 });

  const io = AfPacketIo.open('d0', { netns: d });
  t.teardown(() => io.close());
  const rsMac = (await lab.exec('rs', 'cat', ['/sys/class/net/eth0/address'])).stdout.trim();
  const o4: Outer = { srcMac: io.interfaces[0]!.mac, dstMac: rsMac, saddr: '10.9.0.1', daddr: '10.9.0.2' };
  const o6: Outer = { srcMac: io.interfaces[0]!.mac, dstMac: rsMac, saddr: 'fd09::1', daddr: 'fd09::2' };
  let nextPort = 41000;
  const syn = (af: 4 | 6, seq: number, checksum: 'valid' | 'partial' = 'valid') => {
    const sport = nextPort++;
    const client = af === 4 ? `10.9.7.${sport % 200 + 1}` : `fd09:7::${(sport % 200 + 1).toString(16)}`;
    const pkt = ipPacketOf(buildTcp({ saddr: client, daddr: af === 4 ? VIP4 : VIP6, sport, dport: 80, seq, l4Checksum: checksum }));
    return { pkt, client, sport, seq };
  };
  const isSynAckFor = (s: { client: string; sport: number }) => (c: Captured) =>
    c.info.proto === 6 && c.info.sport === 80 && c.info.dport === s.sport && (c.info.tcpFlags & 0x12) === 0x12 &&
    addrText(c, 'daddr') === s.client;
  const isUnreach = (c: Captured) => (c.info.proto === 1 && c.info.icmpType === 3) || (c.info.proto === 58 && c.info.icmpType === 1);

  t.test('without the decapsulator the kernel rejects the outer packet', async (t) => {
    const s = syn(4, 1000);
    sendFrames(io, [ipipFrame(o4, s.pkt)]);
    const got = await collect(io, 2000, (c) => isUnreach(c) || isSynAckFor(s)(c), (g) => g.length > 0);
    t.equal(got.length, 1, 'one answer');
    t.equal(got[0]?.info.icmpType, 3, 'ICMP destination unreachable');
    t.equal(got[0]?.info.icmpCode, 2, 'code 2: protocol unreachable (no ipip module)');
  });

  let td: LabProcess;
  t.test('start tun-decap in the real server namespace', async (t) => {
    td = lab.spawn('rs', process.execPath, [TUN_DECAP, '--gue-port', '6080']);
    const m = await td.waitFor(/^ready tun=(\S+) ifaces=(\S+)$/m, 15_000);
    t.equal(m[2], 'eth0', 'captures every non-loopback interface by default (here: eth0)');
    const tables = (await lab.exec('rs', 'nft', ['list', 'tables'])).stdout;
    t.match(tables, /table netdev ulvs_tundecap_\d+/, 'nftables drop table installed (ingress of the captured interface)');
    const link = JSON.parse((await lab.ip('rs', ['-j', 'link', 'show', m[1]!])).stdout)[0];
    t.ok(link.flags.includes('UP'), `TUN device ${m[1]} is up`);
  });

  const cases: Array<[string, () => { frame: Uint8Array; s: ReturnType<typeof syn> }]> = [
    ['IPIP', () => { const s = syn(4, 2000); return { frame: ipipFrame(o4, s.pkt), s }; }],
    ['GRE with checksum and key', () => { const s = syn(4, 3000); return { frame: greFrame(o4, s.pkt, { csum: true, key: 42 }), s }; }],
    ['GUE on port 6080', () => { const s = syn(4, 4000); return { frame: gueFrame(o4, s.pkt, { port: 6080 }), s }; }],
    ['GUE with remote checksum offload (inner checksum left partial)', () => {
      const s = syn(4, 5000, 'partial');
      return { frame: gueFrame(o4, s.pkt, { port: 6080, remcsum: [20, 36] }), s };
    }],
    ['IPv6 in IPv4 (SIT)', () => { const s = syn(6, 6000); return { frame: ipipFrame(o4, s.pkt), s }; }],
    ['IPv6 in IPv6', () => { const s = syn(6, 7000); return { frame: ipipFrame(o6, s.pkt), s }; }],
  ];
  let delivered = 0;
  for (const [name, make] of cases) {
    t.test(`${name}: the SYN reaches the listener, the SYN-ACK leaves towards the client`, async (t) => {
      const { frame, s } = make();
      t.equal(sendFrames(io, [frame]), 1, 'tunnelled SYN sent');
      const got = await collect(io, 3000, (c) => isUnreach(c) || isSynAckFor(s)(c), (g) => g.some(isSynAckFor(s)));
      const synack = got.find(isSynAckFor(s));
      t.ok(synack, 'SYN-ACK seen on the wire');
      if (synack) {
        t.equal(addrText(synack, 'saddr'), s.pkt[0]! >>> 4 === 4 ? VIP4 : VIP6, 'from the VIP');
        t.equal(rd32(synack.bytes, synack.info.l4Off + 8), (s.seq + 1) >>> 0, 'acknowledging our SYN');
        t.equal(synack.info.ttl, 64, 'sent directly by the real server (not routed)');
      }
      t.equal(got.filter(isUnreach).length, 0, 'no ICMP unreachable for the outer packet');
      delivered++;
    });
  }

  t.test('a GUE remcsum UDP GSO super-frame of datagrams: each is decapsulated and answered', async (t) => {
    const sport = nextPort++;
    const client = `10.9.7.${sport % 200 + 1}`;
    // Seven datagrams of 300 bytes and a shorter last one, their UDP checksums partial.
    const texts = Array.from({ length: 8 }, (_, k) => `gso-${k} `.padEnd(k === 7 ? 120 : 300, String.fromCharCode(97 + k)));
    const inners = texts.map((p, k) => ipPacketOf(buildUdp({ saddr: client, daddr: VIP4, sport, dport: 53, df: true, ipId: k, payload: p, l4Checksum: 'partial' })));
    const g = gueGsoFrame(o4, inners, { port: 6080 });
    t.ok(g.frame.length > 1514, `one ${g.frame.length}-byte frame, longer than the MTU`);
    const vio = AfPacketIo.open('d0', { netns: d, vnetHdr: true });
    try {
      const b = vio.createBatch();
      b.put(0, g.frame, FRAME_GSO | FRAME_CSUM_NOT_READY);
      b.csumStart[0] = g.csumStart;
      b.csumOffset[0] = g.csumOffset;
      b.gsoType[0] = GSO_UDP_L4;
      b.gsoSize[0] = g.gsoSize;
      b.verdict[0] = V_FORWARD;
      b.count = 1;
      t.equal(vio.send(b), 1, 'sent as one UDP GSO super-frame');
    } finally {
      vio.close();
    }
    const isReply = (c: Captured) => c.info.proto === 17 && c.info.sport === 53 && c.info.dport === sport && addrText(c, 'daddr') === client;
    const got = await collect(io, 3000, isReply, (x) => x.length >= texts.length);
    const bodies = got.map((c) => Buffer.from(c.bytes.subarray(c.info.l4Off + 8, c.info.l4Off + rd16(c.bytes, c.info.l4Off + 4))).toString());
    t.same(bodies.sort(), texts.map((x) => `rs1 ${x}`).sort(), 'the UDP server answered every datagram of the super-frame');
    if (bodies.length === texts.length) delivered += texts.length;
  });

  t.test('packets tunnelled to another address are left alone', async (t) => {
    const s = syn(4, 8000);
    sendFrames(io, [ipipFrame({ ...o4, daddr: '10.9.0.77' }, s.pkt)]);
    const got = await collect(io, 700, isSynAckFor(s));
    t.equal(got.length, 0, 'no SYN-ACK: the outer destination is not this host');
  });

  t.test('stop: statistics, nftables table and TUN device are gone', async (t) => {
    await td.stop();
    const m = /^stats (.*)$/m.exec(td.output());
    t.ok(m, 'final statistics printed');
    const stats = Object.fromEntries((m?.[1] ?? '').split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
    t.equal(stats['injected'], delivered, 'every tunnelled SYN that was answered was injected once');
    t.equal(stats['not-local'], 1, 'the packet for another address was counted as not-local');
    t.same([stats['gso-frames'], stats['gso-chunks']], [1, 8], 'the super-frame crossed the veth whole and was decapsulated chunk by chunk');
    t.equal(stats['inject-errors'] ?? 0, 0, 'no TUN write errors');
    const tables = (await lab.exec('rs', 'nft', ['list', 'tables'])).stdout;
    t.notMatch(tables, /ulvs_tundecap/, 'nftables table removed');
    const links = (await lab.ip('rs', ['-o', 'link', 'show'])).stdout;
    t.notMatch(links, /ulvstun0/, 'TUN device removed');
  });
});
