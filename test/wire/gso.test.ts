/**
 * GSO/TSO super-frames through `ulvs daemon --vnet-hdr` (NAT), on the kernel selftest topology
 * (helpers.ts), with segmentation offload on at the client and the real server:
 * - the director's own interfaces without offloads: the super-frames the director forwards whole
 *   (partial checksum, NAT-rewritten) are cut and checksummed by the director's kernel on the
 *   way out, so the capture on the real server's side holds ordinary frames whose checksums
 *   tshark validates: a wrong partial sum would show as a bad checksum there;
 * - every interface with offloads on: the super-frames cross to the real server whole (the
 *   capture there sees frames longer than the MTU) and the payload still arrives byte for byte.
 * Both: a multi-megabyte payload compared byte for byte at the server, far fewer packets than
 * MTU-sized segments in ipvsadm's counters (the frames were forwarded as super-frames), no RST.
 */
import t from 'tap';
import {
  ADDR, BIN, WIRE_SKIP, buildSelftest, capture, frameProblems, ipvsadm, pushPayload, startDaemon, type Selftest,
} from './helpers.js';
import { dissectFile, type DissectedFrame } from '../util/tshark.js';

const PAYLOAD = 4 << 20;

/**
 * Bad checksums and malformed frames (frameProblems' checksum and malformation findings). TCP
 * analysis notes are not judged: a D-SACK, say, only tells that a sender retransmitted early
 * (a late ACK on this shared 2-vCPU machine), which says nothing about the frames' correctness.
 */
function broken(f: DissectedFrame): string[] {
  return frameProblems(f).filter((p) => /checksum|malformed|#\d+$/i.test(p));
}

async function offloads(st: Selftest, directorOn: boolean): Promise<void> {
  // Senders: TSO/GSO on, so their TCP hands veth 64 KiB super-frames (veth passes them on whole).
  for (const [ns, ifname] of [['ns0', 'br0'], ['ns0', 'veth01'], ['ns2', 'veth21']] as const) {
    await st.lab.offload(ns, ifname, { tx: true, sg: true, tso: true, gso: true });
  }
  for (const ifname of ['veth10', 'veth12']) {
    await st.lab.offload('ns1', ifname, directorOn ? { tx: true, sg: true, tso: true, gso: true } : { tx: false, tso: false, gso: false });
  }
}

for (const directorOn of [false, true]) {
  t.test(`NAT through ulvs --vnet-hdr with TSO on the senders, director offloads ${directorOn ? 'on' : 'off'}`, WIRE_SKIP, async (t) => {
    const st = await buildSelftest('nat', true);
    t.teardown(() => st.lab.teardown());
    await offloads(st, directorOn);
    const d = await startDaemon(st, ['--vnet-hdr']);
    t.match(d.ready, /afpacket on veth10,veth12, nft table ulvs_\d+, vnet hdr/, 'the daemon runs with the vnet header');
    t.notMatch(d.proc.output(), /offloads on/, 'no offload warning');
    const svc = `${ADDR.vip}:${ADDR.port}`;
    await ipvsadm(st, ['-A', '-t', svc, '-s', 'rr']);
    await ipvsadm(st, ['-a', '-t', svc, '-r', `${ADDR.rip}:${ADDR.port}`, '-m']);

    const capServer = await capture(st, 'ns2', 'veth21', st.mac12, 'server-side');
    const capClient = await capture(st, 'ns0', 'veth01', st.mac10, 'client-side');
    const r = await pushPayload(st, PAYLOAD);
    t.equal(r.received.length, r.sent.length, `${PAYLOAD} bytes arrived on the real server`);
    t.ok(r.received.equals(r.sent), 'the payload arrived byte for byte');
    t.comment(`director offloads ${directorOn ? 'on' : 'off'}: ${PAYLOAD} bytes in ${r.ms.toFixed(0)} ms (${(PAYLOAD * 8 / r.ms / 1000).toFixed(0)} Mbit/s)`);
    const fileServer = await capServer.stop();
    const fileClient = await capClient.stop();

    const stats = await ipvsadm(st, ['-Ln', '--stats', '--exact']);
    const row = new RegExp(`->\\s+${ADDR.rip.replace(/\./g, '\\.')}:${ADDR.port}\\s+1\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)`).exec(stats);
    t.ok(row !== null, `ipvsadm --stats has the real server's row: ${stats}`);
    if (row !== null) {
      const inPkts = Number(row[1]);
      t.ok(Number(row[3]) > PAYLOAD, `InBytes ${row[3]} cover the payload`);
      t.ok(inPkts < PAYLOAD / 1448 / 2, `${inPkts} packets in for ${PAYLOAD} bytes: super-frames crossed the director whole`);
    }

    const fields = ['ip.src', 'ip.dst', 'tcp.srcport', 'tcp.dstport', 'tcp.flags.reset', 'frame.len'];
    const server = dissectFile(fileServer, fields, ['--disable-protocol', 'http', '--disable-protocol', 'thrift']);
    const toServer = server.filter((f) => f.protocols.includes('tcp'));
    t.ok(toServer.length > 50, `server side: ${toServer.length} TCP frames captured`);
    t.same(toServer.filter((f) => f.one('ip.dst') !== ADDR.rip || f.one('tcp.dstport') !== String(ADDR.port)).map((f) => f.n), [],
      'server side: every frame goes to RIP:port (DNAT)');
    const longest = Math.max(...toServer.map((f) => Number(f.one('frame.len'))));
    if (directorOn) {
      t.ok(longest > 1514, `server side: frames up to ${longest} bytes, super-frames reached the real server whole`);
    } else {
      t.ok(longest <= 1514, `server side: frames up to ${longest} bytes, the director's kernel cut the super-frames`);
      const bad = toServer.map((f) => ({ f, why: broken(f) })).filter((x) => x.why.length > 0)
        .map(({ f, why }) => `#${f.n} ${f.protocols}: ${why.join(', ')}`);
      t.same(bad, [], `server side: tshark finds no bad checksum and no malformed frame among ${toServer.length} frames`);
    }
    const client = dissectFile(fileClient, fields, ['--disable-protocol', 'http', '--disable-protocol', 'thrift']).filter((f) => f.protocols.includes('tcp'));
    t.ok(client.length > 0, `client side: ${client.length} NAT replies`);
    t.same(client.filter((f) => f.one('ip.src') !== ADDR.vip || f.one('tcp.srcport') !== String(ADDR.port)).map((f) => f.n), [],
      'client side: every reply comes from VIP:port');
    if (!directorOn) {
      const bad = client.map((f) => ({ f, why: broken(f) })).filter((x) => x.why.length > 0).map(({ f, why }) => `#${f.n}: ${why.join(', ')}`);
      t.same(bad, [], 'client side: tshark finds no bad checksum (replies were partial, the kernel finished them)');
    }
    const resets = [...server, ...client].filter((f) => f.one('tcp.flags.reset') === '1' || f.one('tcp.flags.reset') === 'True');
    t.same(resets.map((f) => f.n), [], 'no RST');

    d.proc.child.kill('SIGTERM');
    const ex = await Promise.race([d.proc.exited(), new Promise<null>((res) => setTimeout(() => res(null), 10_000))]);
    t.same(ex, { code: 0, signal: null }, 'the daemon exits 0 on SIGTERM');
  });
}

/**
 * TUN: no virtio_net_hdr GSO type describes a tunnelled super-frame, so the director cuts each
 * one into encapsulated segments (xmit/gso.ts); with the vnet header their inner checksums leave
 * partial, for the director's kernel to finish (director offloads off: the capture on the real
 * server's side then holds finished frames, judged by tshark) or for the real server to accept
 * as they are (offloads on: `tun-decap` passes the partial sums on, merging the segments into
 * super-frames as GRO would).
 */
for (const directorOn of [false, true]) {
  t.test(`TUN through ulvs --vnet-hdr with TSO on the senders, director offloads ${directorOn ? 'on' : 'off'}`, WIRE_SKIP, async (t) => {
    const st = await buildSelftest('tun', true);
    t.teardown(() => st.lab.teardown());
    await offloads(st, directorOn);
    const td = st.lab.spawn('ns2', process.execPath, [BIN, 'tun-decap']);
    await td.waitFor(/^ready /m, 15_000);
    await startDaemon(st, ['--vnet-hdr']);
    const svc = `${ADDR.vip}:${ADDR.port}`;
    await ipvsadm(st, ['-A', '-t', svc, '-s', 'rr']);
    await ipvsadm(st, ['-a', '-t', svc, '-r', `${ADDR.rip}:${ADDR.port}`, '-i']);

    const capServer = await capture(st, 'ns2', 'veth21', st.mac12, 'server-side');
    const r = await pushPayload(st, PAYLOAD);
    t.equal(r.received.length, r.sent.length, `${PAYLOAD} bytes arrived on the real server`);
    t.ok(r.received.equals(r.sent), 'the payload arrived byte for byte');
    t.comment(`TUN, director offloads ${directorOn ? 'on' : 'off'}: ${PAYLOAD} bytes in ${r.ms.toFixed(0)} ms (${(PAYLOAD * 8 / r.ms / 1000).toFixed(0)} Mbit/s)`);
    const fileServer = await capServer.stop();

    const stats = await ipvsadm(st, ['-Ln', '--stats', '--exact']);
    const row = new RegExp(`->\\s+${ADDR.rip.replace(/\./g, '\\.')}:${ADDR.port}\\s+1\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)`).exec(stats);
    t.ok(row !== null && Number(row[1]) < PAYLOAD / 1448 / 2, `super-frames entered the director whole: ${row?.[1]} packets in`);

    const fields = ['ip.proto', 'ip.dst', 'tcp.dstport', 'tcp.flags.reset', 'frame.len'];
    const frames = dissectFile(fileServer, fields, ['--disable-protocol', 'http', '--disable-protocol', 'thrift']);
    const tunnelled = frames.filter((f) => f.protocols.includes('ip:ip:tcp'));
    // tcpdump does not keep up with every frame here: a count, not the whole stream.
    t.ok(tunnelled.length > 100, `server side: ${tunnelled.length} IPIP frames captured`);
    t.same(tunnelled.filter((f) => f.all('ip.dst')[0] !== ADDR.rip || f.one('tcp.dstport') !== String(ADDR.port)).map((f) => f.n), [],
      'server side: every outer packet goes to the RIP, every inner one to VIP:port');
    const longest = Math.max(...tunnelled.map((f) => Number(f.one('frame.len'))));
    t.ok(longest <= 1514, `server side: frames up to ${longest} bytes, within the MTU`);
    if (!directorOn) {
      const bad = tunnelled.map((f) => ({ f, why: broken(f) })).filter((x) => x.why.length > 0)
        .map(({ f, why }) => `#${f.n} ${f.protocols}: ${why.join(', ')}`);
      t.same(bad, [], `server side: tshark finds no bad checksum among ${tunnelled.length} frames (partial sums the kernel finished)`);
    }
    t.same(frames.filter((f) => f.one('tcp.flags.reset') === '1' || f.one('tcp.flags.reset') === 'True').map((f) => f.n), [], 'no RST');

    await td.stop();
    const m = /^stats (.*)$/m.exec(td.output());
    const ds = Object.fromEntries((m?.[1] ?? '').split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
    t.equal(ds['inject-errors'] ?? 0, 0, 'tun-decap: no TUN write errors');
    if (directorOn) {
      // Partial inner checksums arrive as they left: the decapsulator merges those segments.
      t.ok((ds['super-frames'] ?? 0) > 0 && (ds['writes'] ?? Infinity) < (ds['injected'] ?? 0) / 4,
        `tun-decap merged segments: ${ds['injected']} packets in ${ds['writes']} writes (${ds['super-frames']} super-frames)`);
    } else {
      t.comment(`tun-decap: ${ds['injected']} packets in ${ds['writes']} writes (${ds['super-frames']} super-frames)`);
    }
  });
}

/**
 * TUN with GUE and remote checksum offload: the one tunnel whose super-frames the director hands
 * to the kernel whole, as UDP GSO frames (xmit/gue-gso.ts). Director offloads off: its kernel cuts
 * them (__udp_gso_segment) and the real server's side holds MTU-sized GUE packets, whose outer
 * UDP checksums tshark judges and whose inner checksums the decapsulator completes from the
 * remcsum option (the stack drops the payload if one is wrong). Offloads on: the UDP GSO frames
 * cross the veth and bridge whole and `tun-decap` splits them.
 */
for (const directorOn of [false, true]) {
  t.test(`TUN (GUE remcsum) through ulvs --vnet-hdr with TSO on the senders, director offloads ${directorOn ? 'on' : 'off'}`, WIRE_SKIP, async (t) => {
    const st = await buildSelftest('tun', true);
    t.teardown(() => st.lab.teardown());
    await offloads(st, directorOn);
    const td = st.lab.spawn('ns2', process.execPath, [BIN, 'tun-decap', '--gue-port', '6080']);
    await td.waitFor(/^ready /m, 15_000);
    await startDaemon(st, ['--vnet-hdr']);
    const svc = `${ADDR.vip}:${ADDR.port}`;
    await ipvsadm(st, ['-A', '-t', svc, '-s', 'rr']);
    await ipvsadm(st, ['-a', '-t', svc, '-r', `${ADDR.rip}:${ADDR.port}`, '-i', '--tun-type', 'gue', '--tun-port', '6080', '--tun-remcsum']);

    const capServer = await capture(st, 'ns2', 'veth21', st.mac12, 'server-side');
    const r = await pushPayload(st, PAYLOAD);
    t.equal(r.received.length, r.sent.length, `${PAYLOAD} bytes arrived on the real server`);
    t.ok(r.received.equals(r.sent), 'the payload arrived byte for byte');
    t.comment(`TUN GUE remcsum, director offloads ${directorOn ? 'on' : 'off'}: ${PAYLOAD} bytes in ${r.ms.toFixed(0)} ms (${(PAYLOAD * 8 / r.ms / 1000).toFixed(0)} Mbit/s)`);
    const fileServer = await capServer.stop();

    const stats = await ipvsadm(st, ['-Ln', '--stats', '--exact']);
    const row = new RegExp(`->\\s+${ADDR.rip.replace(/\./g, '\\.')}:${ADDR.port}\\s+1\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)`).exec(stats);
    t.ok(row !== null && Number(row[1]) < PAYLOAD / 1448 / 2, `super-frames entered the director whole: ${row?.[1]} packets in`);

    const fields = ['ip.proto', 'ip.dst', 'udp.dstport', 'frame.len'];
    const frames = dissectFile(fileServer, fields, ['--disable-protocol', 'http', '--disable-protocol', 'thrift']);
    const gue = frames.filter((f) => f.one('udp.dstport') === '6080');
    t.ok(gue.length > 20, `server side: ${gue.length} GUE frames captured`);
    t.same(gue.filter((f) => f.one('ip.dst') !== ADDR.rip).map((f) => f.n), [], 'server side: every GUE packet goes to the RIP');
    const longest = Math.max(...gue.map((f) => Number(f.one('frame.len'))));
    if (directorOn) {
      t.ok(longest > 1514, `server side: frames up to ${longest} bytes, UDP GSO frames reached the real server whole`);
    } else {
      t.ok(longest <= 1514, `server side: frames up to ${longest} bytes, the director's kernel cut the UDP GSO frames`);
      const bad = gue.map((f) => ({ f, why: broken(f) })).filter((x) => x.why.length > 0)
        .map(({ f, why }) => `#${f.n} ${f.protocols}: ${why.join(', ')}`);
      t.same(bad, [], `server side: tshark finds no bad outer checksum among ${gue.length} frames the kernel cut`);
    }

    await td.stop();
    const m = /^stats (.*)$/m.exec(td.output());
    const ds = Object.fromEntries((m?.[1] ?? '').split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
    t.equal(ds['inject-errors'] ?? 0, 0, 'tun-decap: no TUN write errors');
    t.ok((ds['injected'] ?? 0) > 0 && (ds['bad-checksum'] ?? 0) === 0 && (ds['unsupported'] ?? 0) === 0,
      `tun-decap: ${ds['injected']} packets decapsulated, none refused (${m?.[1]})`);
    if (directorOn) {
      t.ok((ds['injected'] ?? 0) > 4 * (ds['frames'] ?? Infinity), `tun-decap: ${ds['injected']} inner packets from ${ds['frames']} frames (whole UDP GSO frames)`);
    }
  });
}

void BIN;
