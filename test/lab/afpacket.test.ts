/**
 * AF_PACKET backend on real veth pairs between lab namespaces: frames go out of one
 * namespace and arrive in the other with the right bytes and metadata.
 */
import t from 'tap';
import { Lab } from '../../src/lab/netns.js';
import { AfPacketIo } from '../../src/io/afpacket.js';
import { interfaceAddresses, interfaceInfo, listInterfaces } from '../../src/io/afpacket-netdev.js';
import {
  FrameBatch, FRAME_CSUM_NOT_READY, FRAME_OUTGOING, SLOT_FRAME_MAX, V_DROP, V_FORWARD, V_PASS, V_REPLY,
} from '../../src/io/batch.js';
import { buildUdp } from '../../src/packet/build.js';
import { l4ChecksumOk } from '../../src/packet/checksum.js';
import { formatIp4 } from '../../src/util/ip.js';
import { LAB_SKIP, collect, sendFrames } from './helpers.js';
import koffi from 'koffi';
import {
  PACKET_FANOUT, PACKET_FANOUT_FLAG_DEFRAG, PACKET_FANOUT_FLAG_IGNORE_OUTGOING, PACKET_FANOUT_HASH, SOL_PACKET, SOL_SOCKET, SO_RCVBUF, SO_SNDBUF, libc,
} from '../../src/io/afpacket-libc.js';
import { writeArpRequest } from '../../src/neigh/arp.js';

/** getsockopt(fd, level, name) of an int option. */
function getIntOpt(fd: number, level: number, name: number): number {
  const u32 = new Uint32Array(2);
  u32[1] = 4;
  const addr = Number(koffi.address(new Uint8Array(u32.buffer)));
  if (libc().getsockopt(fd, level, name, addr, addr + 4) !== 0) throw new Error(`getsockopt(${level}, ${name}) failed`);
  return u32[0]!;
}

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

const isExp = (c: { bytes: Uint8Array }) => c.bytes[12] === 0x88 && c.bytes[13] === 0xb5;

/** Sends one UDP datagram from inside `ns` with the kernel's own stack. */
async function kernelUdp(lab: Lab, ns: string, host: string, port: number, text: string): Promise<void> {
  const script = `const s=require('node:dgram').createSocket('udp4');s.send(Buffer.from(${JSON.stringify(text)}),${port},${JSON.stringify(host)},()=>s.close());`;
  await lab.exec(ns, process.execPath, ['-e', script]);
}

t.test('AF_PACKET between two namespaces', LAB_SKIP, async (t) => {
  const lab = Lab.create('afpacket');
  t.teardown(() => lab.teardown());
  // No IPv6: its router solicitations and MLD reports would be stray frames on the links.
  const quiet = { 'net.ipv6.conf.all.disable_ipv6': 1, 'net.ipv6.conf.default.disable_ipv6': 1 };
  const a = await lab.addNs('a', quiet);
  const b = await lab.addNs('b', quiet);
  const c = await lab.addNs('c', quiet);
  await lab.veth({ ns: 'a', ifname: 'va', addrs: ['10.1.0.1/24'], mtu: 1400 }, { ns: 'b', ifname: 'vb', addrs: ['10.1.0.2/24'] });
  await lab.veth({ ns: 'a', ifname: 'va2', addrs: ['10.2.0.1/24'] }, { ns: 'c', ifname: 'vc', addrs: ['10.2.0.2/24'] });

  t.test('interface facts agree with iproute2', async (t) => {
    const link = JSON.parse((await lab.ip('a', ['-j', 'link', 'show', 'va'])).stdout)[0];
    const info = interfaceInfo('va', a);
    t.equal(info.index, link.ifindex, 'ifindex');
    t.equal(info.macText, link.address, 'MAC');
    t.equal(info.mtu, 1400, 'MTU as configured');
    t.equal(info.ipv4 === null ? '' : formatIp4(info.ipv4), '10.1.0.1', 'primary IPv4');
    t.equal(info.ipv4Prefix, 24, 'prefix length');
    t.ok(info.up && info.running && !info.loopback, 'up, running, not loopback');
    t.same(listInterfaces(a).map((i) => i.name).sort(), ['lo', 'va', 'va2'], 'if_nameindex lists the namespace\'s interfaces only');
    const addrs = interfaceAddresses(a).filter((x) => x.family === 4).map((x) => `${x.ifname} ${x.local}/${x.prefixlen}`);
    t.ok(addrs.includes('va 10.1.0.1/24') && addrs.includes('va2 10.2.0.1/24'), 'ip -j addr sees both addresses');
    t.throws(() => interfaceInfo('nosuch0', a), /No such device/, 'unknown interface is an error with errno text');
  });

  t.test('a batch of 100 frames arrives complete, in order, with ifindex', async (t) => {
    const tx = AfPacketIo.open('va', { netns: a, txOnly: true });
    const rx = AfPacketIo.open('vb', { netns: b });
    t.teardown(() => { tx.close(); rx.close(); });
    const dst = rx.interfaces[0]!.mac;
    const src = tx.interfaces[0]!.mac;
    // More than one sendmmsg worth (batchSize 64), some frames not marked for sending.
    const batch = new FrameBatch(100);
    const expected: number[] = [];
    for (let i = 0; i < 100; i++) {
      batch.put(i, expFrame(dst, src, i, 60 + (i % 7)));
      batch.verdict[i] = i % 10 === 3 ? V_DROP : i % 10 === 7 ? V_PASS : i % 2 ? V_REPLY : V_FORWARD;
      if (batch.verdict[i] === V_FORWARD || batch.verdict[i] === V_REPLY) expected.push(i);
    }
    batch.count = 100;
    t.equal(tx.send(batch), expected.length, 'send() reports the frames marked forward/reply');
    t.equal(tx.stats.txCalls, 2, '80 frames take two sendmmsg calls of at most 64');
    const got = await collect(rx, 3000, isExp, (g) => g.length >= expected.length);
    t.equal(got.length, expected.length, 'every sent frame was received');
    t.same(got.map((g) => (g.bytes[14]! << 8) | g.bytes[15]!), expected, 'same frames, same order');
    t.ok(got.every((g, k) => {
      const want = expFrame(dst, src, expected[k]!, 60 + (expected[k]! % 7));
      return g.bytes.length === want.length && g.bytes.every((v, i) => v === want[i]);
    }), 'byte-for-byte identical, lengths preserved');
    t.ok(got.every((g) => g.ifindex === rx.interfaces[0]!.index), 'ifindex is the receiving veth');
    t.ok(got.every((g) => (g.flags & FRAME_OUTGOING) === 0), 'received frames are not flagged outgoing');
    t.ok(rx.stats.rxFrames >= expected.length, 'rx statistics count them');
    rx.readKernelStats();
    t.ok(rx.stats.kernelPackets >= expected.length && rx.stats.kernelDrops === 0, 'kernel PACKET_STATISTICS: queued, none dropped');
  });

  t.test('frames the kernel refuses are counted and skipped, the others still go out', async (t) => {
    const tx = AfPacketIo.open('va', { netns: a, txOnly: true });
    const rx = AfPacketIo.open('vb', { netns: b });
    t.teardown(() => { tx.close(); rx.close(); });
    const d = rx.interfaces[0]!.mac;
    const s = tx.interfaces[0]!.mac;
    // va has MTU 1400: a 1500-byte frame (1486 bytes of payload) is too big for it.
    t.equal(sendFrames(tx, [expFrame(d, s, 1), expFrame(d, s, 2, 1500), expFrame(d, s, 3)]), 2, 'two of three sent');
    t.equal(tx.stats.txErrors, 1, 'one refusal counted');
    t.equal(tx.stats.lastTxErrno, 90, 'EMSGSIZE');
    const got = await collect(rx, 1500, isExp, (g) => g.length >= 2);
    t.same(got.map((g) => g.bytes[15]), [1, 3], 'the frames around the refused one arrived');
  });

  t.test('opening a missing interface fails cleanly', async (t) => {
    const { readdirSync } = await import('node:fs');
    const fds = readdirSync('/proc/self/fd').length;
    t.throws(() => AfPacketIo.open(['vb', 'nosuch0'], { netns: b }), /nosuch0.*No such device/, 'error names the interface and errno');
    t.equal(readdirSync('/proc/self/fd').length, fds, 'no socket left open');
  });

  t.test('wait() times out when idle and returns at once when frames are queued', async (t) => {
    const tx = AfPacketIo.open('va', { netns: a, txOnly: true });
    const rx = AfPacketIo.open('vb', { netns: b });
    t.teardown(() => { tx.close(); rx.close(); });
    const t0 = Date.now();
    t.equal(rx.wait(150), false, 'nothing queued');
    t.ok(Date.now() - t0 >= 140, 'waited for the timeout');
    sendFrames(tx, [expFrame(rx.interfaces[0]!.mac, tx.interfaces[0]!.mac, 1)]);
    const t1 = Date.now();
    t.equal(rx.wait(2000), true, 'a frame is queued');
    t.ok(Date.now() - t1 < 1000, 'without waiting for the timeout');
  });

  t.test('watch() calls back from the event loop when a frame arrives', async (t) => {
    const tx = AfPacketIo.open('va', { netns: a, txOnly: true });
    const rx = AfPacketIo.open('vb', { netns: b });
    t.teardown(() => { tx.close(); rx.close(); });
    const batch = rx.createBatch();
    let received = 0;
    const done = new Promise<void>((resolve) => {
      const stop = rx.watch(() => {
        received += rx.recv(batch);
        if (received >= 5) { stop(); resolve(); }
      });
    });
    setTimeout(() => sendFrames(tx, [1, 2, 3, 4, 5].map((i) => expFrame(rx.interfaces[0]!.mac, tx.interfaces[0]!.mac, i))), 50);
    await Promise.race([done, new Promise((_, rej) => setTimeout(() => rej(new Error('watch never fired')), 3000))]);
    t.equal(received, 5, 'all five frames read from the callback');
  });

  t.test('one io on two interfaces: per-frame egress ifindex and merged receive', async (t) => {
    const io = AfPacketIo.open(['va', 'va2'], { netns: a });
    const rb = AfPacketIo.open('vb', { netns: b });
    const rc = AfPacketIo.open('vc', { netns: c });
    t.teardown(() => { io.close(); rb.close(); rc.close(); });
    const [ia, ia2] = io.interfaces;
    sendFrames(io, [expFrame(rb.interfaces[0]!.mac, ia!.mac, 11)], ia!.index);
    sendFrames(io, [expFrame(rc.interfaces[0]!.mac, ia2!.mac, 22)], ia2!.index);
    const atB = await collect(rb, 1500, isExp, (g) => g.length >= 1);
    const atC = await collect(rc, 1500, isExp, (g) => g.length >= 1);
    t.same(atB.map((g) => g.bytes[15]), [11], 'frame for ifindex va left through va');
    t.same(atC.map((g) => g.bytes[15]), [22], 'frame for ifindex va2 left through va2');
    // And the other way: both peers send, the two-interface io receives both with their ifindex.
    sendFrames(rb, [expFrame(ia!.mac, rb.interfaces[0]!.mac, 33)]);
    sendFrames(rc, [expFrame(ia2!.mac, rc.interfaces[0]!.mac, 44)]);
    const back = await collect(io, 1500, isExp, (g) => g.length >= 2);
    t.same(back.map((g) => `${g.bytes[15]}@${g.ifindex}`).sort(), [`33@${ia!.index}`, `44@${ia2!.index}`].sort(),
      'each frame reports the interface it came in on');
  });

  t.test('auxdata: partial checksums are flagged while tx offload is on, complete after ethtool tx off', async (t) => {
    const rx = AfPacketIo.open('vb', { netns: b });
    t.teardown(() => rx.close());
    const isUdp = (c: { info: { proto: number; dport: number } }) => c.info.proto === 17 && c.info.dport === 9999;
    await kernelUdp(lab, a, '10.1.0.2', 9999, 'offload on');
    const on = await collect(rx, 2000, isUdp, (g) => g.length >= 1);
    t.equal(on.length, 1, 'the datagram was captured');
    t.ok((on[0]!.flags & FRAME_CSUM_NOT_READY) !== 0, 'TP_STATUS_CSUMNOTREADY reported as FRAME_CSUM_NOT_READY');
    const i0 = on[0]!.info;
    t.notOk(l4ChecksumOk(on[0]!.bytes, 4, i0.l3Off, 17, i0.l4Off, i0.l4Len), 'and indeed the UDP checksum is only partial');
    await lab.offload(a, 'va', { tx: false });
    await kernelUdp(lab, a, '10.1.0.2', 9999, 'offload off');
    const off = await collect(rx, 2000, isUdp, (g) => g.length >= 1);
    t.equal(off.length, 1, 'the second datagram was captured');
    t.equal(off[0]!.flags & FRAME_CSUM_NOT_READY, 0, 'no partial-checksum flag');
    const i1 = off[0]!.info;
    t.ok(l4ChecksumOk(off[0]!.bytes, 4, i1.l3Off, 17, i1.l4Off, i1.l4Len), 'the UDP checksum is complete');
    await lab.offload(a, 'va', { tx: true });
  });

  t.test('VLAN tags the kernel moved into metadata are put back into the frame', async (t) => {
    // The receive path untags every 802.1Q/802.1ad frame (skb_vlan_untag) before the packet taps,
    // so a tagged frame sent on va reaches a socket on vb only through auxdata.
    const tx = AfPacketIo.open('va', { netns: a, txOnly: true });
    const rx = AfPacketIo.open('vb', { netns: b });
    t.teardown(() => { tx.close(); rx.close(); });
    const tci = (3 << 13) | 5;
    const f = buildUdp({ srcMac: tx.interfaces[0]!.mac, dstMac: rx.interfaces[0]!.mac, vlan: tci, saddr: '10.5.0.1', daddr: '10.5.0.2', dport: 5 });
    const ad = f.slice();
    ad[12] = 0x88; // the same frame with an 802.1ad (QinQ service) tag
    ad[13] = 0xa8;
    t.equal(sendFrames(tx, [f, ad]), 2, 'tagged frames sent');
    const got = await collect(rx, 2000, (c) => c.bytes.length === f.length, (g) => g.length >= 2);
    t.equal(got.length, 2, 'both captured at full length (tag included)');
    t.ok(got[0] && got[0].bytes.every((v, i) => v === f[i]), '802.1Q frame identical to what was sent: TPID, priority and VLAN id');
    t.ok(got[1] && got[1].bytes.every((v, i) => v === ad[i]), '802.1ad frame identical too (TPID from auxdata)');
    t.equal(got[0]?.info.vlanTci, tci, 'the packet parser sees the tag');
    t.equal(got[0]?.info.dport, 5, 'and the UDP header behind it');
  });

  t.test('PACKET_IGNORE_OUTGOING hides this host\'s own frames; without it they are flagged', async (t) => {
    const ignoring = AfPacketIo.open('va', { netns: a });
    const seeing = AfPacketIo.open('va', { netns: a, ignoreOutgoing: false });
    t.teardown(() => { ignoring.close(); seeing.close(); });
    const isUdp = (c: { info: { proto: number; dport: number } }) => c.info.proto === 17 && c.info.dport === 9998;
    await kernelUdp(lab, a, '10.1.0.2', 9998, 'out');
    const seen = await collect(seeing, 1500, isUdp, (g) => g.length >= 1);
    t.equal(seen.length, 1, 'the outgoing datagram is seen without the option');
    t.ok((seen[0]!.flags & FRAME_OUTGOING) !== 0, 'and flagged FRAME_OUTGOING');
    const hidden = await collect(ignoring, 300, isUdp);
    t.equal(hidden.length, 0, 'the socket with PACKET_IGNORE_OUTGOING does not see it');
  });

  t.test('frames larger than a slot are dropped and counted, the rest stay in slot order', async (t) => {
    await lab.ip(a, ['link', 'set', 'va', 'mtu', '9500']);
    await lab.ip(b, ['link', 'set', 'vb', 'mtu', '9500']);
    const tx = AfPacketIo.open('va', { netns: a, txOnly: true });
    const rx = AfPacketIo.open('vb', { netns: b });
    t.teardown(async () => {
      tx.close();
      rx.close();
      await lab.ip(a, ['link', 'set', 'va', 'mtu', '1400']);
    });
    const d = rx.interfaces[0]!.mac;
    const s = tx.interfaces[0]!.mac;
    // A batch slot cannot even hold such a frame, so the big one comes from the kernel's UDP stack
    // (with a permanent neighbour entry, so no ARP frame joins the sequence).
    await lab.ip(a, ['neigh', 'replace', '10.1.0.2', 'lladdr', rx.interfaces[0]!.macText, 'dev', 'va', 'nud', 'permanent']);
    t.equal(sendFrames(tx, [expFrame(d, s, 1)]), 1, 'small frame 1 sent');
    await kernelUdp(lab, a, '10.1.0.2', 9997, 'x'.repeat(SLOT_FRAME_MAX));
    t.equal(sendFrames(tx, [expFrame(d, s, 3, 200)]), 1, 'small frame 3 sent');
    t.ok(rx.wait(2000), 'frames queued');
    await new Promise((r) => setTimeout(r, 50));
    const batch = rx.createBatch();
    const n = rx.recv(batch);
    t.equal(n, 2, 'two frames delivered');
    t.equal(rx.stats.rxTruncated, 1, 'the oversized one counted as truncated');
    t.same([batch.frame(0)[15], batch.frame(1)[15]], [1, 3], 'the small frames, in order');
    t.equal(batch.len[1], 200, 'the frame after the dropped one keeps its length');
    t.ok(batch.off[1]! < batch.slotBase(2), 'and sits in slot 1');
    const want = expFrame(d, s, 3, 200);
    t.ok(batch.frame(1).every((v, i) => v === want[i]), 'and its bytes');
  });

  t.test('PACKET_FANOUT spreads flows over the sockets of a group', async (t) => {
    const tx = AfPacketIo.open('va', { netns: a, txOnly: true });
    const r1 = AfPacketIo.open('vb', { netns: b, fanoutGroup: 77 });
    const r2 = AfPacketIo.open('vb', { netns: b, fanoutGroup: 77 });
    t.teardown(() => { tx.close(); r1.close(); r2.close(); });
    const frames = [];
    for (let i = 0; i < 64; i++) {
      frames.push(buildUdp({ srcMac: tx.interfaces[0]!.mac, dstMac: r1.interfaces[0]!.mac, saddr: '10.1.0.1', daddr: '10.1.0.2', sport: 20000 + i, dport: 7 }));
    }
    sendFrames(tx, frames);
    const isOurs = (c: { info: { proto: number; dport: number } }) => c.info.proto === 17 && c.info.dport === 7;
    const g1 = await collect(r1, 800, isOurs);
    const g2 = await collect(r2, 300, isOurs);
    t.equal(g1.length + g2.length, 64, 'each frame went to exactly one socket of the group');
    t.ok(g1.length > 0 && g2.length > 0, `both sockets got flows (${g1.length} + ${g2.length})`);
  });

  t.test('with fanout, every member of the group sees every ARP frame, and each data frame once', async (t) => {
    const tx = AfPacketIo.open('va', { netns: a, txOnly: true });
    const r1 = AfPacketIo.open('vb', { netns: b, fanoutGroup: 78 });
    const r2 = AfPacketIo.open('vb', { netns: b, fanoutGroup: 78 });
    t.teardown(() => { tx.close(); r1.close(); r2.close(); });
    t.equal(r1.rxFds.length, 2, 'one group socket and one neighbour socket for the interface');
    t.equal(getIntOpt(r1.rxFds[0]!, SOL_PACKET, PACKET_FANOUT), (78 | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG | PACKET_FANOUT_FLAG_IGNORE_OUTGOING) << 16)) >>> 0,
      'the first socket is in group 78 (hash, defrag, ignoring outgoing frames)');
    t.equal(getIntOpt(r1.rxFds[1]!, SOL_PACKET, PACKET_FANOUT), 0, 'the neighbour socket is in no group');
    const mac = tx.interfaces[0]!.mac;
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 4; i++) {
      const arp = new Uint8Array(60);
      writeArpRequest(arp, 0, mac, 0x0a010001, 0x0a010064 + i);
      frames.push(arp);
    }
    for (let i = 0; i < 32; i++) {
      frames.push(buildUdp({ srcMac: mac, dstMac: r1.interfaces[0]!.mac, saddr: '10.1.0.1', daddr: '10.1.0.2', sport: 21000 + i, dport: 8 }));
    }
    sendFrames(tx, frames);
    const isArp = (c: { bytes: Uint8Array }) => c.bytes[12] === 0x08 && c.bytes[13] === 0x06 && c.bytes[38] === 10 && c.bytes[39] === 1 && c.bytes[40] === 0 &&
      (c.bytes[41]! & 0xfc) === 0x64;
    const isUdp = (c: { info: { proto: number; dport: number } }) => c.info.proto === 17 && c.info.dport === 8;
    const g1 = await collect(r1, 800, (c) => isArp(c) || isUdp(c));
    const g2 = await collect(r2, 300, (c) => isArp(c) || isUdp(c));
    t.same([g1.filter(isArp).length, g2.filter(isArp).length], [4, 4], 'each member got the 4 ARP requests, once each');
    const u1 = g1.filter(isUdp).length;
    const u2 = g2.filter(isUdp).length;
    t.equal(u1 + u2, 32, 'each UDP frame went to exactly one member');
    t.ok(u1 > 0 && u2 > 0, `both members got flows (${u1} + ${u2})`);
    // What a member sends is not read back by the group (a forwarder would forward it again, forever).
    const own: Uint8Array[] = [];
    for (let i = 0; i < 16; i++) {
      own.push(buildUdp({ srcMac: r1.interfaces[0]!.mac, dstMac: mac, saddr: '10.1.0.2', daddr: '10.1.0.1', sport: 23000 + i, dport: 10 }));
    }
    t.equal(sendFrames(r1, own), 16, 'a member sends 16 frames');
    const back = (c: { info: { proto: number; dport: number } }) => c.info.proto === 17 && c.info.dport === 10;
    t.same([(await collect(r1, 300, back)).length, (await collect(r2, 100, back)).length], [0, 0], 'no member reads them back');
  });

  t.test('rcvbuf and sndbuf reach the sockets (the kernel doubles them)', async (t) => {
    const io = AfPacketIo.open('vb', { netns: b, rcvbuf: 3 << 20, sndbuf: 1 << 20 });
    t.teardown(() => io.close());
    t.equal(getIntOpt(io.rxFds[0]!, SOL_SOCKET, SO_RCVBUF), 6 << 20, 'SO_RCVBUF');
    t.equal(getIntOpt(io.txFd, SOL_SOCKET, SO_SNDBUF), 2 << 20, 'SO_SNDBUF');
    const d = AfPacketIo.open('vb', { netns: b });
    t.teardown(() => d.close());
    t.equal(getIntOpt(d.rxFds[0]!, SOL_SOCKET, SO_RCVBUF), 64 << 20, 'default SO_RCVBUF: 32 MiB asked');
    t.equal(getIntOpt(d.txFd, SOL_SOCKET, SO_SNDBUF), 8 << 20, 'default SO_SNDBUF: 4 MiB asked');
  });
});
