/**
 * The memory-mapped ring backend (io/afpacket-ring.ts) on real veth pairs between lab
 * namespaces: frames out of a TX ring and into a TPACKET_V3 RX ring with the right bytes
 * and metadata (compared with what the recvmmsg backend reports for the same frames),
 * then the kernel selftest's NAT transfer through `ulvs daemon --backend afpacket-ring`.
 */
import t from 'tap';
import { Lab } from '../../src/lab/netns.js';
import { AfPacketIo } from '../../src/io/afpacket.js';
import { AfPacketRingIo } from '../../src/io/afpacket-ring.js';
import {
  FrameBatch, FRAME_CSUM_NOT_READY, FRAME_CSUM_VALID, FRAME_OUTGOING, SLOT_SIZE, V_DROP, V_FORWARD, V_PASS, V_REPLY, type PacketIo,
} from '../../src/io/batch.js';
import { buildUdp } from '../../src/packet/build.js';
import { l4ChecksumOk } from '../../src/packet/checksum.js';
import { writeArpRequest } from '../../src/neigh/arp.js';
import { reparse, sendFrames, type Captured } from '../lab/helpers.js';
import {
  ADDR, WIRE_SKIP, buildSelftest, ipvsadm, nftTables, pushPayload, startDaemon,
} from './helpers.js';

/** A 60-byte (or longer) experimental-EtherType frame carrying a sequence number. */
function expFrame(dst: Uint8Array, src: Uint8Array, seq: number, size = 60): Uint8Array {
  const f = new Uint8Array(size);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  f[14] = seq >>> 8;
  f[15] = seq & 255;
  for (let i = 16; i < size; i++) f[i] = (seq + i) & 255;
  return f;
}

const isExp = (c: Captured) => c.bytes[12] === 0x88 && c.bytes[13] === 0xb5;
const seqOf = (c: Captured) => (c.bytes[14]! << 8) | c.bytes[15]!;

/** Receives on `io` into `batch` (polling without blocking the event loop) until `until` says enough or `ms` passes. */
async function collectInto(
  io: PacketIo, batch: FrameBatch, ms: number,
  keep: (c: Captured) => boolean = () => true, until: (got: Captured[]) => boolean = () => false,
): Promise<Captured[]> {
  const got: Captured[] = [];
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const n = io.recv(batch);
    for (let i = 0; i < n; i++) {
      const bytes = batch.frame(i);
      const c: Captured = { bytes, flags: batch.flags[i]!, ifindex: batch.ifindex[i]!, info: reparse(bytes) };
      if (keep(c)) got.push(c);
    }
    if (until(got)) break;
    if (n === 0) await new Promise((r) => setTimeout(r, 3));
  }
  return got;
}

/** Sends one UDP datagram from inside `ns` with the kernel's own stack. */
async function kernelUdp(lab: Lab, ns: string, host: string, port: number, text: string): Promise<void> {
  const script = `const s=require('node:dgram').createSocket('udp4');s.send(Buffer.from(${JSON.stringify(text)}),${port},${JSON.stringify(host)},()=>s.close());`;
  await lab.exec(ns, process.execPath, ['-e', script], { env: { ...process.env, NODE_OPTIONS: '' } });
}

t.test('AF_PACKET rings between two namespaces', WIRE_SKIP, async (t) => {
  const lab = Lab.create('afring');
  t.teardown(() => lab.teardown());
  // No IPv6: its router solicitations and MLD reports would be stray frames on the link.
  const quiet = { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 };
  const a = await lab.addNs('a', quiet);
  const b = await lab.addNs('b', quiet);
  await lab.veth({ ns: 'a', ifname: 'va', addrs: ['10.1.0.1/24'], mtu: 1400 }, { ns: 'b', ifname: 'vb', addrs: ['10.1.0.2/24'] });

  const modes = [[3, 'zero-copy'], [3, 'copy'], [3, 'foreign batch'], [2, 'zero-copy'], [2, 'copy']] as const;
  for (const [rxVersion, mode] of modes) {
    t.test(`tx ring → TPACKET_V${rxVersion} rx ring, ${mode}: 100 frames complete, in order, byte for byte`, async (t) => {
      const tx = AfPacketRingIo.open('va', { netns: a, txOnly: true });
      const rx = AfPacketRingIo.open('vb', { netns: b, zeroCopy: mode === 'zero-copy', rxVersion });
      t.teardown(() => { tx.close(); rx.close(); });
      const dst = rx.interfaces[0]!.mac;
      const src = tx.interfaces[0]!.mac;
      // More than one kick's worth (batchSize 64), some frames not marked for sending, from the ring's own batch.
      const batch = tx.createBatch(64);
      const big = new FrameBatch(100);
      const expected: number[] = [];
      for (let i = 0; i < 100; i++) {
        big.put(i, expFrame(dst, src, i, 60 + (i % 7) * 200));
        big.verdict[i] = i % 10 === 3 ? V_DROP : i % 10 === 7 ? V_PASS : i % 2 ? V_REPLY : V_FORWARD;
        if (big.verdict[i] === V_FORWARD || big.verdict[i] === V_REPLY) expected.push(i);
      }
      big.count = 100;
      t.equal(tx.send(big), expected.length, 'send() from a foreign batch reports the frames marked forward/reply');
      t.equal(tx.stats.txCalls, 2, '80 frames: two kicks of at most 64');
      // And a second round from the io's own batch (the copyWithin path).
      for (let i = 0; i < 5; i++) {
        batch.put(i, expFrame(dst, src, 1000 + i));
        batch.verdict[i] = V_FORWARD;
      }
      batch.count = 5;
      t.equal(tx.send(batch), 5, 'five more from the ring batch');
      const rb = mode === 'foreign batch' ? new FrameBatch(64) : rx.createBatch();
      const got = await collectInto(rx, rb, 3000, isExp, (g) => g.length >= expected.length + 5);
      const want = [...expected, 1000, 1001, 1002, 1003, 1004];
      t.same(got.map(seqOf), want, 'every frame arrived, in order');
      t.ok(got.every((g) => {
        const s = seqOf(g);
        const w = s >= 1000 ? expFrame(dst, src, s) : expFrame(dst, src, s, 60 + (s % 7) * 200);
        return g.bytes.length === w.length && g.bytes.every((v, i) => v === w[i]);
      }), 'byte-for-byte identical, lengths preserved');
      t.ok(got.every((g) => g.ifindex === rx.interfaces[0]!.index), 'ifindex is the receiving veth');
      t.ok(got.every((g) => (g.flags & FRAME_OUTGOING) === 0), 'not flagged outgoing');
      t.ok(rx.stats.rxFrames >= want.length && rx.stats.rxBlocks >= 1, `rx statistics: ${rx.stats.rxFrames} frames in ${rx.stats.rxBlocks} ring units`);
      if (mode === 'zero-copy') t.ok(got.length > 0 && rb.off[0]! > rb.capacity * SLOT_SIZE, 'zero-copy frames point into the ring, past the arena');
      rx.readKernelStats();
      t.ok(rx.stats.kernelPackets >= want.length && rx.stats.kernelDrops === 0, 'kernel PACKET_STATISTICS: queued, none dropped');
    });
  }

  t.test('interoperates with the recvmmsg/sendmmsg backend both ways', async (t) => {
    const ringA = AfPacketRingIo.open('va', { netns: a });
    const mmsgB = AfPacketIo.open('vb', { netns: b });
    t.teardown(() => { ringA.close(); mmsgB.close(); });
    const ma = ringA.interfaces[0]!.mac;
    const mb = mmsgB.interfaces[0]!.mac;
    t.equal(sendFrames(ringA, [1, 2, 3].map((i) => expFrame(mb, ma, i))), 3, 'ring sends');
    const atB = await collectInto(mmsgB, new FrameBatch(64), 2000, isExp, (g) => g.length >= 3);
    t.same(atB.map(seqOf), [1, 2, 3], 'recvmmsg receives them');
    t.equal(sendFrames(mmsgB, [4, 5].map((i) => expFrame(ma, mb, i))), 2, 'sendmmsg sends');
    const atA = await collectInto(ringA, ringA.createBatch(), 2000, isExp, (g) => g.length >= 2);
    t.same(atA.map(seqOf), [4, 5], 'the ring receives them (and not its own frames: PACKET_IGNORE_OUTGOING)');
  });

  t.test('txMode sendmmsg: a zero-copy echo sends frames straight out of the rx ring', async (t) => {
    const ringB = AfPacketRingIo.open('vb', { netns: b, txMode: 'sendmmsg' });
    const mmsgA = AfPacketIo.open('va', { netns: a });
    t.teardown(() => { ringB.close(); mmsgA.close(); });
    const ma = mmsgA.interfaces[0]!.mac;
    const mb = ringB.interfaces[0]!.mac;
    const sent = [1, 2, 3, 4].map((i) => expFrame(mb, ma, i, 60 + i * 300));
    t.equal(sendFrames(mmsgA, sent), 4, 'four frames towards the ring');
    const batch = ringB.createBatch();
    let echoed = 0;
    const end = Date.now() + 2000;
    while (echoed < 4 && Date.now() < end) {
      const n = ringB.recv(batch);
      for (let i = 0; i < n; i++) {
        const o = batch.off[i]!;
        // Swap the MACs in place, in ring memory, and send the frame back from there.
        for (let k = 0; k < 6; k++) { const x = batch.buf[o + k]!; batch.buf[o + k] = batch.buf[o + 6 + k]!; batch.buf[o + 6 + k] = x; }
        batch.verdict[i] = batch.buf[o + 12] === 0x88 ? V_FORWARD : V_DROP;
      }
      echoed += ringB.send(batch);
      if (n === 0) await new Promise((r) => setTimeout(r, 3));
    }
    t.equal(echoed, 4, 'echoed through sendmmsg');
    t.equal(ringB.stats.txFrames, 4, 'stats count them');
    const back = await collectInto(mmsgA, new FrameBatch(64), 2000, isExp, (g) => g.length >= 4);
    t.same(back.map(seqOf), [1, 2, 3, 4], 'all came back in order');
    t.ok(back.every((g, k) => {
      const w = expFrame(ma, mb, k + 1, 60 + (k + 1) * 300);
      return g.bytes.length === w.length && g.bytes.every((v, i) => v === w[i]);
    }), 'byte for byte (MACs swapped)');
  });

  t.test('frames over the MTU are counted and skipped, the others still go out', async (t) => {
    const tx = AfPacketRingIo.open('va', { netns: a, txOnly: true });
    const rx = AfPacketRingIo.open('vb', { netns: b });
    t.teardown(() => { tx.close(); rx.close(); });
    const d = rx.interfaces[0]!.mac;
    const s = tx.interfaces[0]!.mac;
    // va has MTU 1400: a 1500-byte frame is too big for it; a 1418-byte 802.1Q-tagged frame is not.
    const tagged = expFrame(d, s, 4, 1418);
    tagged[12] = 0x81; tagged[13] = 0x00; tagged[14] = 0; tagged[15] = 7; tagged[16] = 0x88; tagged[17] = 0xb5;
    t.equal(sendFrames(tx, [expFrame(d, s, 1), expFrame(d, s, 2, 1500), expFrame(d, s, 3), tagged]), 3, 'three of four sent');
    t.equal(tx.stats.txErrors, 1, 'one refusal counted');
    t.equal(tx.stats.lastTxErrno, 90, 'EMSGSIZE');
    const got = await collectInto(rx, rx.createBatch(), 1500, (c) => isExp(c) || c.bytes.length === 1418, (g) => g.length >= 3);
    t.same(got.map((g) => g.bytes.length === 1418 ? 'tagged' : String(g.bytes[15])), ['1', '3', 'tagged'], 'the frames around the refused one arrived');
  });

  for (const rxVersion of [3, 2] as const) t.test(`V${rxVersion} idle: recv() returns nothing, wait() times out, then wakes for a frame`, async (t) => {
    const tx = AfPacketRingIo.open('va', { netns: a, txOnly: true });
    const rx = AfPacketRingIo.open('vb', { netns: b, retireTovMs: 2, rxVersion });
    t.teardown(() => { tx.close(); rx.close(); });
    const batch = rx.createBatch();
    // Drain anything left from earlier subtests' traffic (kernel chatter).
    while (rx.wait(30)) rx.recv(batch);
    t.equal(rx.recv(batch), 0, 'nothing queued');
    const t0 = Date.now();
    t.equal(rx.wait(150), false, 'wait() times out');
    t.ok(Date.now() - t0 >= 140, 'after the timeout');
    sendFrames(tx, [expFrame(rx.interfaces[0]!.mac, tx.interfaces[0]!.mac, 9)]);
    const t1 = Date.now();
    t.equal(rx.wait(2000), true, rxVersion === 3 ? 'a lone frame is handed over (block retired by the timer)' : 'a lone frame is handed over');
    t.ok(Date.now() - t1 < 500, `long before the wait timeout (${Date.now() - t1} ms)`);
    t.equal(rx.recv(batch), 1, 'one frame');
    t.equal(batch.frame(0)[15], 9);
  });

  t.test('watch() calls back from the event loop when frames are handed over', async (t) => {
    const tx = AfPacketRingIo.open('va', { netns: a, txOnly: true });
    const rx = AfPacketRingIo.open('vb', { netns: b });
    t.teardown(() => { tx.close(); rx.close(); });
    const batch = rx.createBatch();
    let received = 0;
    const done = new Promise<void>((resolve) => {
      const stop = rx.watch(() => {
        for (let n = rx.recv(batch); n > 0; n = rx.recv(batch)) {
          for (let i = 0; i < n; i++) if (batch.buf[batch.off[i]! + 12] === 0x88) received++;
        }
        if (received >= 5) { stop(); resolve(); }
      });
    });
    setTimeout(() => sendFrames(tx, [1, 2, 3, 4, 5].map((i) => expFrame(rx.interfaces[0]!.mac, tx.interfaces[0]!.mac, i))), 50);
    await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error('watch never fired')), 3000))]);
    t.equal(received, 5, 'all five frames read from the callback');
  });

  for (const rxVersion of [3, 2] as const) t.test(`V${rxVersion} checksum status: the same FRAME_* flags as PACKET_AUXDATA gives recvmmsg`, async (t) => {
    const ring = AfPacketRingIo.open('vb', { netns: b, rxVersion });
    const mmsg = AfPacketIo.open('vb', { netns: b });
    t.teardown(() => { ring.close(); mmsg.close(); });
    const isUdp = (c: Captured) => c.info.proto === 17 && c.info.dport === 9999;
    for (const offload of [true, false]) {
      await lab.offload(a, 'va', { tx: offload });
      await kernelUdp(lab, a, '10.1.0.2', 9999, `offload ${offload}`);
      const r = await collectInto(ring, ring.createBatch(), 2000, isUdp, (g) => g.length >= 1);
      const m = await collectInto(mmsg, new FrameBatch(64), 2000, isUdp, (g) => g.length >= 1);
      t.equal(r.length, 1, `offload ${offload ? 'on' : 'off'}: the ring captured the datagram`);
      t.equal(m.length, 1, `offload ${offload ? 'on' : 'off'}: so did recvmmsg`);
      if (r.length !== 1 || m.length !== 1) continue;
      const mask = FRAME_CSUM_NOT_READY | FRAME_CSUM_VALID | FRAME_OUTGOING;
      t.equal(r[0]!.flags & mask, m[0]!.flags & mask, `offload ${offload ? 'on' : 'off'}: same flags (${r[0]!.flags & mask})`);
      t.ok(r[0]!.bytes.every((v, i) => v === m[0]!.bytes[i]) && r[0]!.bytes.length === m[0]!.bytes.length, 'same bytes');
      const i0 = r[0]!.info;
      const complete = l4ChecksumOk(r[0]!.bytes, 4, i0.l3Off, 17, i0.l4Off, i0.l4Len);
      if (offload) {
        t.ok((r[0]!.flags & FRAME_CSUM_NOT_READY) !== 0, 'TP_STATUS_CSUMNOTREADY → FRAME_CSUM_NOT_READY');
        t.notOk(complete, 'and the UDP checksum is indeed only partial');
      } else {
        t.equal(r[0]!.flags & FRAME_CSUM_NOT_READY, 0, 'no partial-checksum flag');
        t.ok(complete, 'the UDP checksum is complete');
      }
    }
    await lab.offload(a, 'va', { tx: true });
  });

  t.test('VLAN tags the kernel moved into the ring header are put back into the frame', async (t) => {
    const tx = AfPacketRingIo.open('va', { netns: a, txOnly: true });
    t.teardown(() => tx.close());
    const tci = (3 << 13) | 5;
    const dstMac = AfPacketRingIo.open('vb', { netns: b, txOnly: true });
    const mb = dstMac.interfaces[0]!.mac;
    dstMac.close();
    const f = buildUdp({ srcMac: tx.interfaces[0]!.mac, dstMac: mb, vlan: tci, saddr: '10.5.0.1', daddr: '10.5.0.2', dport: 5 });
    const ad = f.slice();
    ad[12] = 0x88; // the same frame with an 802.1ad (QinQ service) tag
    ad[13] = 0xa8;
    for (const [rxVersion, zeroCopy] of [[3, true], [3, false], [2, true], [2, false]] as const) {
      const rx = AfPacketRingIo.open('vb', { netns: b, zeroCopy, rxVersion });
      t.equal(sendFrames(tx, [f, ad]), 2, 'tagged frames sent');
      const got = await collectInto(rx, rx.createBatch(), 2000, (c) => c.bytes.length === f.length, (g) => g.length >= 2);
      rx.close();
      const what = `V${rxVersion} ${zeroCopy ? 'zero-copy' : 'copy'}`;
      t.equal(got.length, 2, `${what}: both captured at full length (tag included)`);
      t.ok(got[0] && got[0].bytes.every((v, i) => v === f[i]), `${what}: 802.1Q frame identical to what was sent`);
      t.ok(got[1] && got[1].bytes.every((v, i) => v === ad[i]), `${what}: 802.1ad frame identical, TPID 0x88a8 kept`);
    }
  });

  t.test('fanout: a group ring per member, and a neighbour ring that sees every ARP frame', async (t) => {
    const tx = AfPacketRingIo.open('va', { netns: a, txOnly: true });
    const r1 = AfPacketRingIo.open('vb', { netns: b, fanoutGroup: 91, rxVersion: 3 });
    const r2 = AfPacketRingIo.open('vb', { netns: b, fanoutGroup: 91 });
    t.teardown(() => { tx.close(); r1.close(); r2.close(); });
    t.equal(r1.rxFds.length, 2, 'a group ring and a neighbour ring for the interface');
    const mac = tx.interfaces[0]!.mac;
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const arp = new Uint8Array(60);
      writeArpRequest(arp, 0, mac, 0x0a010001, 0x0a010070 + i);
      frames.push(arp);
    }
    for (let i = 0; i < 32; i++) {
      frames.push(buildUdp({ srcMac: mac, dstMac: r1.interfaces[0]!.mac, saddr: '10.1.0.1', daddr: '10.1.0.2', sport: 22000 + i, dport: 9 }));
    }
    sendFrames(tx, frames);
    const isArp = (c: Captured) => c.bytes[12] === 0x08 && c.bytes[13] === 0x06 && c.bytes[38] === 10 && c.bytes[39] === 1 &&
      c.bytes[40] === 0 && (c.bytes[41]! & 0xfc) === 0x70;
    const isUdp = (c: Captured) => c.info.proto === 17 && c.info.dport === 9;
    // (A TPACKET_V3 block is handed over when it times out: give r1 a few ms more than that.)
    const g1 = await collectInto(r1, r1.createBatch(), 800, (c) => isArp(c) || isUdp(c));
    const g2 = await collectInto(r2, r2.createBatch(), 300, (c) => isArp(c) || isUdp(c));
    t.same([g1.filter(isArp).length, g2.filter(isArp).length], [3, 3], 'each member got the 3 ARP requests, once each');
    const u1 = g1.filter(isUdp).length;
    const u2 = g2.filter(isUdp).length;
    t.equal(u1 + u2, 32, 'each UDP frame went to exactly one member');
    t.ok(u1 > 0 && u2 > 0, `both members got flows (${u1} + ${u2})`);
  });
});

t.test('NAT through ulvs daemon --backend afpacket-ring, byte for byte', WIRE_SKIP, async (t) => {
  for (const tx of [true, false]) {
    t.test(`sender checksum offload ${tx ? 'on' : 'off'}`, async (t) => {
      const st = await buildSelftest('nat', tx);
      t.teardown(() => st.lab.teardown());
      const d = await startDaemon(st, ['--backend', 'afpacket-ring']);
      t.match(d.ready, /afpacket-ring on veth10,veth12, nft table ulvs_\d+/, 'the daemon serves both interfaces with the ring backend');
      const svc = `${ADDR.vip}:${ADDR.port}`;
      await ipvsadm(st, ['-A', '-t', svc, '-s', 'rr']);
      await ipvsadm(st, ['-a', '-t', svc, '-r', `${ADDR.rip}:${ADDR.port}`, '-m']);
      const r = await pushPayload(st, 1 << 20);
      t.equal(r.received.length, r.sent.length, `${r.sent.length} bytes arrived on the real server`);
      t.ok(r.received.equals(r.sent), 'the payload arrived byte for byte');
      t.comment(`ring nat tx ${tx ? 'on' : 'off'}: ${r.sent.length} bytes in ${r.ms.toFixed(0)} ms`);
      const stats = await ipvsadm(st, ['-Ln', '--stats', '--exact']);
      const row = new RegExp(`->\\s+${ADDR.rip.replace(/\./g, '\\.')}:${ADDR.port}\\s+1\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)`).exec(stats);
      t.ok(row !== null && Number(row[2]) > 0 && Number(row[3]) > 1 << 20, `ipvsadm --stats counts the connection both ways: ${row?.[0] ?? stats}`);
      d.proc.child.kill('SIGTERM');
      const ex = await Promise.race([d.proc.exited(), new Promise<null>((res) => setTimeout(() => res(null), 10_000))]);
      t.same(ex, { code: 0, signal: null }, 'the daemon exits 0 on SIGTERM');
      t.same((await nftTables(st, 'ns1')).filter((n) => n.includes('ulvs_')), [], 'its nftables table is gone');
    });
  }
});
