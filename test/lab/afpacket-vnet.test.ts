/**
 * AF_PACKET with PACKET_VNET_HDR on a veth pair: TSO super-frames from a local TCP sender are
 * received whole with their offload metadata, and super-frames sent with a virtio_net_hdr are
 * either cut and checksummed by the kernel (egress without offloads) or passed on whole.
 */
import t from 'tap';
import { Lab } from '../../src/lab/netns.js';
import { AfPacketIo } from '../../src/io/afpacket.js';
import {
  FRAME_CSUM_NOT_READY, FRAME_GSO, GSO_TCPV4, V_FORWARD, VNET_SLOT_SIZE, type FrameBatch,
} from '../../src/io/batch.js';
import { buildTcp } from '../../src/packet/build.js';
import { completePartialChecksum, l4ChecksumOk } from '../../src/packet/checksum.js';
import { LAB_SKIP, reparse } from './helpers.js';

interface Got { bytes: Uint8Array; flags: number; gsoType: number; gsoSize: number; csumStart: number; csumOffset: number }

/** Receives on `io` into `b` for up to `ms` (or until `enough`), copying each frame and its offload metadata. */
async function gather(io: AfPacketIo, b: FrameBatch, ms: number, enough: (g: Got[]) => boolean): Promise<Got[]> {
  const got: Got[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end && !enough(got)) {
    const n = io.recv(b);
    for (let i = 0; i < n; i++) {
      got.push({ bytes: b.frame(i), flags: b.flags[i]!, gsoType: b.gsoType[i]!, gsoSize: b.gsoSize[i]!, csumStart: b.csumStart[i]!, csumOffset: b.csumOffset[i]! });
    }
    if (n === 0) await new Promise((r) => setTimeout(r, 5));
  }
  return got;
}

t.test('AF_PACKET with the vnet header', LAB_SKIP, async (t) => {
  const lab = Lab.create('afpacket-vnet');
  t.teardown(() => lab.teardown());
  const quiet = { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 };
  const a = await lab.addNs('a', quiet);
  const b = await lab.addNs('b', quiet);
  await lab.veth({ ns: 'a', ifname: 'va', addrs: ['10.7.0.1/24'] }, { ns: 'b', ifname: 'vb', addrs: ['10.7.0.2/24'] });

  t.test('TSO super-frames from a local sender arrive whole, with gso type/size and the partial checksum', async (t) => {
    await lab.offload('a', 'va', { tx: true, sg: true, tso: true, gso: true });
    const io = AfPacketIo.open('vb', { netns: b, vnetHdr: true });
    t.teardown(() => io.close());
    const batch = io.createBatch();
    t.equal(batch.slotSize, VNET_SLOT_SIZE, 'slots for 64 KiB frames');
    t.ok(batch.txOffload, 'the batch says its frames leave with their offload state');
    const server = lab.spawn('b', 'timeout', ['10', 'socat', '-u', 'TCP-LISTEN:7000,reuseaddr', 'OPEN:/dev/null']);
    t.teardown(() => server.stop());
    for (let k = 0; k < 100; k++) {
      const r = await lab.exec('b', 'ss', ['-Hltn', 'sport = :7000'], { allowFail: true });
      if (r.stdout.trim() !== '') break;
      await new Promise((r2) => setTimeout(r2, 20));
    }
    const send = lab.exec('a', 'sh', ['-c', 'head -c 2000000 /dev/zero | timeout 10 socat -u - TCP:10.7.0.2:7000'], { timeoutMs: 15_000 });
    const got = await gather(io, batch, 8000, (g) => g.filter((x) => (x.flags & FRAME_GSO) !== 0).length >= 3);
    await send;
    const supers = got.filter((x) => (x.flags & FRAME_GSO) !== 0);
    t.ok(supers.length >= 3, `${supers.length} GSO frames among ${got.length}`);
    const s = supers[0]!;
    const info = reparse(s.bytes);
    t.ok(s.bytes.length > 1514, `received whole: ${s.bytes.length} bytes`);
    t.equal(info.ipLen, s.bytes.length - 14, 'the IP length covers the whole frame');
    t.equal(s.gsoType & 0x7f, GSO_TCPV4, 'gso type TCPv4');
    t.ok(s.gsoSize > 500 && s.gsoSize <= 1460, `gso size ${s.gsoSize} (the MSS)`);
    t.ok((s.flags & FRAME_CSUM_NOT_READY) !== 0, 'partial checksum');
    t.same([s.csumStart, s.csumOffset], [34, 16], 'csum_start/csum_offset at the TCP checksum');
    const frame = Uint8Array.from(s.bytes);
    t.ok(completePartialChecksum(frame, info) && l4ChecksumOk(frame, 4, 14, 6, info.l4Off, info.l4Len),
      'the field held the pseudo-header sum of the whole frame: completed, it checks out');
  });

  for (const egressOffload of [false, true]) {
    t.test(`a super-frame sent with a virtio_net_hdr, egress offloads ${egressOffload ? 'on' : 'off'}`, async (t) => {
      await lab.offload('a', 'va', egressOffload ? { tx: true, sg: true, tso: true, gso: true } : { tx: false, tso: false, gso: false });
      const tx = AfPacketIo.open('va', { netns: a, txOnly: true, vnetHdr: true });
      const rx = AfPacketIo.open('vb', { netns: b, vnetHdr: true });
      t.teardown(() => { tx.close(); rx.close(); });
      const payload = new Uint8Array(20000).map((_, i) => (i * 7) & 0xff);
      const mss = 1400;
      const f = buildTcp({ srcMac: tx.interfaces[0]!.mac, dstMac: rx.interfaces[0]!.mac, saddr: '10.7.0.1', daddr: '10.7.0.2',
        sport: 1234, dport: 7001, flags: 0x18, seq: 5000, ack: 1, df: true, ipId: 100, payload, l4Checksum: 'partial' });
      const out = tx.createBatch(1);
      out.put(0, f, FRAME_CSUM_NOT_READY | FRAME_GSO);
      out.csumStart[0] = 34;
      out.csumOffset[0] = 16;
      out.gsoType[0] = GSO_TCPV4;
      out.gsoSize[0] = mss;
      out.verdict[0] = V_FORWARD;
      out.count = 1;
      t.equal(tx.send(out), 1, 'the kernel took it');
      const n = Math.ceil(payload.length / mss);
      const got = (await gather(rx, rx.createBatch(), 3000, (g) => g.filter((x) => reparse(x.bytes).dport === 7001).length >= (egressOffload ? 1 : n)))
        .filter((x) => reparse(x.bytes).dport === 7001);
      if (egressOffload) {
        t.equal(got.length, 1, 'the peer received one frame');
        t.equal(got[0]!.bytes.length, f.length, 'whole');
        t.same([got[0]!.gsoType & 0x7f, got[0]!.gsoSize], [GSO_TCPV4, mss], 'still GSO with the same segment size');
      } else {
        t.equal(got.length, n, `the kernel cut it into ${n} segments`);
        const ok = got.every((x, k) => {
          const i = reparse(x.bytes);
          const seq = ((x.bytes[i.l4Off + 4]! << 24) | (x.bytes[i.l4Off + 5]! << 16) | (x.bytes[i.l4Off + 6]! << 8) | x.bytes[i.l4Off + 7]!) >>> 0;
          return x.bytes.length <= 1514 && seq === 5000 + k * mss && (x.flags & FRAME_CSUM_NOT_READY) === 0 &&
            l4ChecksumOk(x.bytes, 4, 14, 6, i.l4Off, i.l4Len);
        });
        t.ok(ok, 'each segment in order, within the MTU, with a complete and valid checksum');
      }
    });
  }
});
