/**
 * AF_PACKET raw I/O rates on a veth pair between two lab namespaces:
 *   node dist/src/lab/io-bench.js [--seconds 3] [--runs 3] [--quick]
 * Builds namespaces `tg` (generator, veth g0) and `tr` (receiver, veth r0), runs
 * each role in its own process pinned to its own CPU (when taskset exists), and
 * prints a table of medians. Frames are 60 bytes with EtherType 0x88b5 (local
 * experimental), addressed to r0's MAC, so the receiving kernel drops them right
 * after the packet taps and the numbers are about the I/O path itself.
 *
 * Two backends, measured in the same run (alternating, so both see the same load):
 * `mmsg` (afpacket.ts: recvmmsg/sendmmsg) and `ring` (afpacket-ring.ts: TPACKET_V3
 * or V2 rx ring, tx ring kicked with one send()), the ring zero-copy (`zc`, frames
 * read in place) and copying each frame into a batch slot (`copy`).
 *
 * Measurements:
 * - tx ×B: B frames per sendmmsg call (B = 1, 8, 64) / per ring kick (64), nobody reading.
 * - rx steady: the receiver keeps up with a ×64 generator (both running).
 * - rx drain ×B: the receiver sleeps while the generator fills its socket
 *   buffer (or ring), then drains it B frames per recv: the receive ceiling.
 * - rx drain with the arena in koffi.alloc memory instead of a JS ArrayBuffer.
 * - idle recv: one recv() with nothing queued (mmsg: FFI + a syscall returning
 *   EAGAIN; ring: one load from ring memory).
 * - round trip: a pinger (mmsg) sends one frame, an echo on the backend under test
 *   waits in poll(), sends it back; median over many: the wake-up latency.
 */
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import koffi from 'koffi';
import { Lab, labSupport } from './netns.js';
import { AfPacketIo } from '../io/afpacket.js';
import { AfPacketRingIo } from '../io/afpacket-ring.js';
import { FrameBatch, SLOT_SIZE, V_FORWARD } from '../io/batch.js';
import { parseMac } from '../util/mac.js';

const SELF = fileURLToPath(import.meta.url);

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1]! : dflt;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function nowS(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

type BenchIo = AfPacketIo | AfPacketRingIo;

/** The backend under test: `--backend mmsg|ring`, ring options `--zc 1|0` (zero-copy batch or copies), `--rxv 3|2` (TPACKET version). */
function openIo(ifname: string, o: { txOnly?: boolean; batchSize: number; rcvbuf?: number }): BenchIo {
  if (arg('backend', 'mmsg') === 'ring') {
    return AfPacketRingIo.open(ifname, {
      txOnly: o.txOnly, batchSize: o.batchSize, zeroCopy: arg('zc', '1') === '1',
      rxRingBytes: Number(arg('ring', String(128 << 20))), retireTovMs: Number(arg('tov', '1')), rxVersion: arg('rxv', '2') === '3' ? 3 : 2,
      txMode: arg('txmode', 'ring') === 'mmsg' ? 'sendmmsg' : 'ring',
    });
  }
  return AfPacketIo.open(ifname, { txOnly: o.txOnly, batchSize: o.batchSize, rcvbuf: o.rcvbuf });
}

/** Generator: sends 60-byte frames in sendmmsg calls (ring kicks) of `batch` for `seconds` (or `count` frames). */
function roleTx(): void {
  const io = openIo(arg('if', 'g0'), { txOnly: true, batchSize: Number(arg('batch', '64')) });
  const b = io.createBatch(io.batchSize);
  const dst = parseMac(arg('dst', 'ff:ff:ff:ff:ff:ff'));
  if (!dst) throw new Error('bad --dst MAC');
  const frame = new Uint8Array(60);
  frame.set(dst, 0);
  frame.set(io.interfaces[0]!.mac, 6);
  frame[12] = 0x88;
  frame[13] = 0xb5;
  for (let i = 0; i < b.capacity; i++) {
    b.put(i, frame);
    b.verdict[i] = V_FORWARD;
  }
  b.count = b.capacity;
  const seconds = Number(arg('seconds', '3'));
  const count = Number(arg('count', '0'));
  const t0 = nowS();
  let sent = 0;
  let calls = 0;
  const end = t0 + seconds;
  for (;;) {
    // Stamp a sequence number so a capture can tell frames apart.
    for (let i = 0; i < b.count; i++) {
      const o = b.off[i]!;
      const seq = sent + i;
      b.buf[o + 14] = seq >>> 24; b.buf[o + 15] = (seq >>> 16) & 255; b.buf[o + 16] = (seq >>> 8) & 255; b.buf[o + 17] = seq & 255;
    }
    sent += io.send(b);
    calls++;
    if (count > 0 ? sent >= count : (calls & 63) === 0 && nowS() >= end) break;
  }
  const dt = nowS() - t0;
  io.close();
  console.log(JSON.stringify({ role: 'tx', frames: sent, seconds: dt, pps: sent / dt, calls, errors: io.stats.txErrors }));
}

/** Receiver: steady state (count while the generator runs) or drain (sleep first, then time the drain). */
function roleRx(): void {
  const drain = arg('mode', 'steady') === 'drain';
  const batchSize = Number(arg('batch', '64'));
  const io = openIo(arg('if', 'r0'), { batchSize, rcvbuf: Number(arg('rcvbuf', String(256 << 20))) });
  let b: FrameBatch;
  if (arg('arena', 'js') === 'koffi') {
    const h = koffi.alloc('uint8_t', batchSize * SLOT_SIZE);
    b = new FrameBatch(batchSize, new Uint8Array(koffi.view(h, batchSize * SLOT_SIZE)));
  } else {
    b = io.createBatch(batchSize);
  }
  console.log('ready');
  const seconds = Number(arg('seconds', '3'));
  let frames = 0;
  let calls = 0;
  let t0 = 0;
  let tLast = 0;
  if (drain) {
    // Let the generator fill the socket buffer while we are not reading.
    sleepMs(Number(arg('sleep', '1500')));
    t0 = nowS();
    for (;;) {
      const n = io.recv(b);
      if (n === 0) break;
      frames += n;
      calls++;
    }
    tLast = nowS();
  } else {
    const deadline = nowS() + seconds + 5;
    while (nowS() < deadline) {
      if (!io.wait(100)) {
        if (frames > 0) break; // the generator stopped
        continue;
      }
      for (;;) {
        const n = io.recv(b);
        if (n === 0) break;
        if (frames === 0) t0 = nowS();
        frames += n;
        calls++;
        tLast = nowS();
      }
      if (frames > 0 && tLast - t0 >= seconds) break;
    }
  }
  // An empty-socket recv measures the fixed cost of one call (FFI + syscall returning EAGAIN).
  const emptyN = 200_000;
  const te = nowS();
  for (let i = 0; i < emptyN; i++) io.recv(b);
  const emptyNs = ((nowS() - te) / emptyN) * 1e9;
  io.readKernelStats();
  io.close();
  const dt = tLast - t0;
  console.log(JSON.stringify({
    role: 'rx', mode: drain ? 'drain' : 'steady', frames, seconds: dt, pps: dt > 0 ? frames / dt : 0,
    avgBatch: calls ? frames / calls : 0, kernelDrops: io.stats.kernelDrops, emptyRecvNs: emptyNs,
  }));
}

/** Echo: waits in poll(), sends every frame back to where it came from (MACs swapped), until idle for a second. */
function roleEcho(): void {
  const io = openIo(arg('if', 'r0'), { batchSize: 64 });
  const b = io.createBatch(64);
  console.log('ready');
  let idleSince = nowS();
  let echoed = 0;
  const deadline = nowS() + Number(arg('seconds', '3')) + 10;
  while (nowS() < deadline) {
    if (!io.wait(100)) {
      if (echoed > 0 && nowS() - idleSince > 1) break;
      continue;
    }
    for (let n = io.recv(b); n > 0; n = io.recv(b)) {
      for (let i = 0; i < n; i++) {
        const o = b.off[i]!;
        for (let k = 0; k < 6; k++) {
          const t = b.buf[o + k]!;
          b.buf[o + k] = b.buf[o + 6 + k]!;
          b.buf[o + 6 + k] = t;
        }
        b.verdict[i] = b.buf[o + 12] === 0x88 && b.buf[o + 13] === 0xb5 ? V_FORWARD : 0;
      }
      echoed += io.send(b);
    }
    idleSince = nowS();
  }
  io.close();
  console.log(JSON.stringify({ role: 'echo', echoed }));
}

/** Pinger (recvmmsg backend): one frame out, wait for it to come back, `count` times; RTT percentiles in µs. */
function rolePing(): void {
  const io = AfPacketIo.open(arg('if', 'g0'), { batchSize: 8 });
  const dst = parseMac(arg('dst', 'ff:ff:ff:ff:ff:ff'));
  if (!dst) throw new Error('bad --dst MAC');
  const out = io.createBatch(1);
  const inb = io.createBatch(8);
  const frame = new Uint8Array(60);
  frame.set(dst, 0);
  frame.set(io.interfaces[0]!.mac, 6);
  frame[12] = 0x88;
  frame[13] = 0xb5;
  out.put(0, frame);
  out.verdict[0] = V_FORWARD;
  out.count = 1;
  const count = Number(arg('count', '2000'));
  const rtt: number[] = [];
  let lost = 0;
  for (let k = 0; k < count; k++) {
    const o = out.off[0]!;
    out.buf[o + 14] = k >>> 8; out.buf[o + 15] = k & 255;
    const t0 = nowS();
    io.send(out);
    let back = false;
    while (!back && nowS() - t0 < 0.5) {
      if (!io.wait(50)) continue;
      const n = io.recv(inb);
      for (let i = 0; i < n; i++) {
        const p = inb.off[i]!;
        if (inb.buf[p + 12] === 0x88 && inb.buf[p + 13] === 0xb5 && inb.buf[p + 14] === (k >>> 8) && inb.buf[p + 15] === (k & 255)) back = true;
      }
    }
    if (back) rtt.push((nowS() - t0) * 1e6);
    else lost++;
  }
  io.close();
  rtt.sort((x, y) => x - y);
  const q = (f: number) => rtt.length ? rtt[Math.min(rtt.length - 1, Math.floor(rtt.length * f))]! : 0;
  console.log(JSON.stringify({ role: 'ping', p50: q(0.5), p90: q(0.9), p99: q(0.99), lost }));
}

interface Row { what: string; pps: number[]; extra: string[]; unit?: 'pps' | 'ns' | 'us' }

async function main(): Promise<void> {
  const sup = labSupport();
  if (!sup.ok) {
    console.error(`io-bench: ${sup.reason}`);
    process.exit(2);
  }
  const quick = process.argv.includes('--quick');
  const seconds = Number(arg('seconds', quick ? '1' : '3'));
  const runs = Number(arg('runs', quick ? '1' : '3'));
  const haveTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;
  const pin = (cpu: number, argv: string[]) => (haveTaskset ? ['taskset', '-c', String(cpu), ...argv] : argv);
  const lab = Lab.create('io-bench');
  try {
    await lab.addNs('tg');
    await lab.addNs('tr');
    await lab.veth({ ns: 'tg', ifname: 'g0' }, { ns: 'tr', ifname: 'r0' });
    const rmac = (await lab.exec('tr', 'cat', ['/sys/class/net/r0/address'])).stdout.trim();
    const node = process.execPath;
    const runRole = async (ns: string, cpu: number, roleArgs: string[]) => {
      const [cmd, ...rest] = pin(cpu, [node, SELF, ...roleArgs]);
      return lab.spawn(ns, cmd!, rest);
    };
    const result = async (p: Awaited<ReturnType<typeof runRole>>) => {
      const m = await p.waitFor(/^\{"role".*\}$/m, (seconds + 20) * 1000);
      await p.exited();
      return JSON.parse(m[0]) as Record<string, number>;
    };
    const rows: Row[] = [];
    const row = (what: string, unit: Row['unit'] = 'pps') => {
      const r: Row = { what, pps: [], extra: [], unit };
      rows.push(r);
      return r;
    };
    const MMSG = ['--backend', 'mmsg'];
    const RING = ['--backend', 'ring', '--zc', '1', '--rxv', '3'];
    const RING_COPY = ['--backend', 'ring', '--zc', '0', '--rxv', '3'];
    const RING_V2 = ['--backend', 'ring', '--zc', '1', '--rxv', '2'];
    const RING_V2_MMSG = [...RING_V2, '--txmode', 'mmsg'];
    // Each kind of measurement alternates the backends within a run, so both see the same load.
    const txCases: Array<[Row, string[], number]> = [
      [row('tx sendmmsg x1 (no reader)'), MMSG, 1],
      [row('tx sendmmsg x8 (no reader)'), MMSG, 8],
      [row('tx sendmmsg x64 (no reader)'), MMSG, 64],
      [row('tx ring x64: copy + one send() (no reader)'), RING, 64],
      [row('tx sendmmsg x64 from ring-io memory'), RING_V2_MMSG, 64],
    ];
    for (let k = 0; k < runs; k++) {
      for (const [r, be, bs] of txCases) {
        const tx = await runRole('tg', 0, ['--role', 'tx', ...be, '--if', 'g0', '--dst', rmac, '--batch', String(bs), '--seconds', String(seconds)]);
        const j = await result(tx);
        r.pps.push(j.pps!);
        if (j.errors) r.extra.push(`${j.errors} errors`);
      }
    }
    const steadyCases: Array<[Row, Row, string[]]> = [
      [row('rx steady recvmmsg x64 (generator x64)'), row('  its generator (sendmmsg x64)'), MMSG],
      [row('rx steady ring V3 zero-copy x64'), row('  its generator (sendmmsg x64)'), RING],
      [row('rx steady ring V3 copy x64'), row('  its generator (sendmmsg x64)'), RING_COPY],
      [row('rx steady ring V2 zero-copy x64'), row('  its generator (sendmmsg x64)'), RING_V2],
    ];
    for (let k = 0; k < runs; k++) {
      for (const [r, g, be] of steadyCases) {
        const rx = await runRole('tr', 1, ['--role', 'rx', ...be, '--mode', 'steady', '--if', 'r0', '--seconds', String(seconds)]);
        await rx.waitFor(/^ready$/m);
        const tx = await runRole('tg', 0, ['--role', 'tx', ...MMSG, '--if', 'g0', '--dst', rmac, '--batch', '64', '--seconds', String(seconds + 0.5)]);
        const jr = await result(rx);
        const jt = await result(tx);
        r.pps.push(jr.pps!);
        r.extra.push(`avg batch ${jr.avgBatch!.toFixed(1)}, kernel drops ${jr.kernelDrops}`);
        g.pps.push(jt.pps!);
      }
    }
    const idleMmsg = row('idle recv() recvmmsg (EAGAIN syscall)', 'ns');
    const idleRing = row('idle recv() ring (one load, no syscall)', 'ns');
    const drainCases: Array<[Row, string[], number, string, Row | null]> = [
      [row('rx drain recvmmsg x64'), MMSG, 64, 'js', idleMmsg],
      [row('rx drain recvmmsg x8'), MMSG, 8, 'js', null],
      [row('rx drain recvmmsg x1'), MMSG, 1, 'js', null],
      [row('rx drain recvmmsg x64 (koffi.alloc arena)'), MMSG, 64, 'koffi', null],
      [row('rx drain ring V3 zero-copy x64'), RING, 64, 'js', idleRing],
      [row('rx drain ring V3 copy x64'), RING_COPY, 64, 'js', null],
      [row('rx drain ring V2 zero-copy x64'), RING_V2, 64, 'js', null],
    ];
    for (let k = 0; k < runs; k++) {
      for (const [r, be, bs, arena, idle] of drainCases) {
        const rx = await runRole('tr', 1, ['--role', 'rx', ...be, '--mode', 'drain', '--if', 'r0', '--batch', String(bs), '--arena', arena, '--sleep', '1500']);
        await rx.waitFor(/^ready$/m);
        const tx = await runRole('tg', 0, ['--role', 'tx', ...MMSG, '--if', 'g0', '--dst', rmac, '--batch', '64', '--seconds', '1.2']);
        const jr = await result(rx);
        await result(tx);
        r.pps.push(jr.pps!);
        r.extra.push(`${jr.frames} frames queued, avg batch ${jr.avgBatch!.toFixed(1)}, kernel drops ${jr.kernelDrops}`);
        idle?.pps.push(jr.emptyRecvNs!);
      }
    }
    const rttCases: Array<[Row, string[]]> = [
      [row('round trip, echo on recvmmsg', 'us'), MMSG],
      [row('round trip, echo on ring V3 (tov 1 ms)', 'us'), RING],
      [row('round trip, echo on ring V2', 'us'), RING_V2],
      [row('round trip, echo on ring V2 + sendmmsg', 'us'), RING_V2_MMSG],
    ];
    const pings = quick ? 300 : 1000;
    for (let k = 0; k < runs; k++) {
      for (const [r, be] of rttCases) {
        const echo = await runRole('tr', 1, ['--role', 'echo', ...be, '--if', 'r0', '--seconds', String(seconds)]);
        await echo.waitFor(/^ready$/m);
        const ping = await runRole('tg', 0, ['--role', 'ping', '--if', 'g0', '--dst', rmac, '--count', String(pings)]);
        const jp = await result(ping);
        await result(echo);
        r.pps.push(jp.p50!);
        r.extra.push(`p90 ${jp.p90!.toFixed(0)} µs, p99 ${jp.p99!.toFixed(0)} µs, lost ${jp.lost}`);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    console.log(`\nAF_PACKET on veth, 60-byte frames, ${runs} run(s) of ${seconds} s, ${haveTaskset ? 'tx on cpu0, rx on cpu1' : 'unpinned'}, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    for (const r of rows) {
      const extra = r.extra.length ? `  ${r.extra[r.extra.length >> 1]}` : '';
      if (r.unit === 'ns' || r.unit === 'us') {
        const u = r.unit === 'ns' ? 'ns' : 'µs';
        console.log(`${r.what.padEnd(44)} median ${median(r.pps).toFixed(0).padStart(5)} ${u}  (${r.pps.map((p) => p.toFixed(0)).join(' / ')})${extra}`);
        continue;
      }
      const runsText = r.pps.map((p) => `${(p / 1e3).toFixed(0)}k`).join(' / ');
      const best = Math.max(...r.pps);
      console.log(`${r.what.padEnd(44)} median ${(median(r.pps) / 1e3).toFixed(0).padStart(5)} k pps, best ${(best / 1e3).toFixed(0).padStart(5)} k  (${runsText})${extra}`);
    }
    const ratio = (what: string, ring: Row, mmsg: Row) =>
      console.log(`ratio ring/recvmmsg ${what.padEnd(30)} ${(median(ring.pps) / median(mmsg.pps)).toFixed(2)}`);
    console.log('');
    ratio('tx x64', txCases[3]![0], txCases[2]![0]);
    ratio('rx steady (V3 zero-copy)', steadyCases[1]![0], steadyCases[0]![0]);
    ratio('rx steady (V3 copy)', steadyCases[2]![0], steadyCases[0]![0]);
    ratio('rx drain x64 (V3 zero-copy)', drainCases[4]![0], drainCases[0]![0]);
    ratio('rx drain x64 (V3 copy)', drainCases[5]![0], drainCases[0]![0]);
    ratio('idle recv cost', idleRing, idleMmsg);
    ratio('rx steady (V2 zero-copy)', steadyCases[3]![0], steadyCases[0]![0]);
    ratio('rx drain x64 (V2 zero-copy)', drainCases[6]![0], drainCases[0]![0]);
    ratio('round trip p50 (V3)', rttCases[1]![0], rttCases[0]![0]);
    ratio('round trip p50 (V2)', rttCases[2]![0], rttCases[0]![0]);
  } finally {
    await lab.teardown();
  }
}

const role = arg('role', '');
if (role === 'tx') roleTx();
else if (role === 'rx') roleRx();
else if (role === 'echo') roleEcho();
else if (role === 'ping') rolePing();
else await main();
