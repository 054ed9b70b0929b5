/**
 * AF_PACKET raw I/O rates on a veth pair between two lab namespaces:
 *   node dist/src/lab/io-bench.js [--seconds 3] [--runs 3] [--quick]
 * Builds namespaces `tg` (generator, veth g0) and `tr` (receiver, veth r0), runs
 * each role in its own process pinned to its own CPU (when taskset exists), and
 * prints a table of medians. Frames are 60 bytes with EtherType 0x88b5 (local
 * experimental), addressed to r0's MAC, so the receiving kernel drops them right
 * after the packet taps and the numbers are about the I/O path itself.
 *
 * Measurements:
 * - tx ×B: sendmmsg with B frames per call (B = 1, 8, 64), nobody reading.
 * - rx steady: the receiver keeps up with a ×64 generator (both running).
 * - rx drain ×B: the receiver sleeps while the generator fills its socket
 *   buffer, then drains it with recvmmsg of B frames: the receive ceiling.
 * - rx drain with the arena in koffi.alloc memory instead of a JS ArrayBuffer.
 * - the cost of one recvmmsg on an empty socket (syscall + FFI overhead).
 */
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import koffi from 'koffi';
import { Lab, labSupport } from './netns.js';
import { AfPacketIo } from '../io/afpacket.js';
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

/** Generator: sends 60-byte frames in sendmmsg calls of `batch` for `seconds` (or `count` frames). */
function roleTx(): void {
  const io = AfPacketIo.open(arg('if', 'g0'), { txOnly: true, batchSize: Number(arg('batch', '64')) });
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
  const io = AfPacketIo.open(arg('if', 'r0'), { batchSize, rcvbuf: Number(arg('rcvbuf', String(256 << 20))) });
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

interface Row { what: string; pps: number[]; extra: string[] }

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
    const row = (what: string) => {
      const r: Row = { what, pps: [], extra: [] };
      rows.push(r);
      return r;
    };
    for (const bs of [1, 8, 64]) {
      const r = row(`tx sendmmsg x${bs} (no reader)`);
      for (let k = 0; k < runs; k++) {
        const tx = await runRole('tg', 0, ['--role', 'tx', '--if', 'g0', '--dst', rmac, '--batch', String(bs), '--seconds', String(seconds)]);
        const j = await result(tx);
        r.pps.push(j.pps!);
      }
    }
    {
      const r = row('rx steady (generator x64 running)');
      const g = row('  its generator (tx x64 with a reader)');
      for (let k = 0; k < runs; k++) {
        const rx = await runRole('tr', 1, ['--role', 'rx', '--mode', 'steady', '--if', 'r0', '--seconds', String(seconds)]);
        await rx.waitFor(/^ready$/m);
        const tx = await runRole('tg', 0, ['--role', 'tx', '--if', 'g0', '--dst', rmac, '--batch', '64', '--seconds', String(seconds + 0.5)]);
        const jr = await result(rx);
        const jt = await result(tx);
        r.pps.push(jr.pps!);
        r.extra.push(`avg batch ${jr.avgBatch!.toFixed(1)}, kernel drops ${jr.kernelDrops}`);
        g.pps.push(jt.pps!);
      }
    }
    const drains: Array<[number, string]> = [[64, 'js'], [8, 'js'], [1, 'js'], [64, 'koffi']];
    for (const [bs, arena] of drains) {
      const r = row(`rx drain recvmmsg x${bs}${arena === 'koffi' ? ' (koffi.alloc arena)' : ''}`);
      for (let k = 0; k < runs; k++) {
        const rx = await runRole('tr', 1, ['--role', 'rx', '--mode', 'drain', '--if', 'r0', '--batch', String(bs), '--arena', arena, '--sleep', '1500']);
        await rx.waitFor(/^ready$/m);
        const tx = await runRole('tg', 0, ['--role', 'tx', '--if', 'g0', '--dst', rmac, '--batch', '64', '--seconds', '1.2']);
        const jr = await result(rx);
        await result(tx);
        r.pps.push(jr.pps!);
        r.extra.push(`${jr.frames} frames queued, avg batch ${jr.avgBatch!.toFixed(1)}, empty recv ${jr.emptyRecvNs!.toFixed(0)} ns`);
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    console.log(`\nAF_PACKET on veth, 60-byte frames, ${runs} run(s) of ${seconds} s, ${haveTaskset ? 'tx on cpu0, rx on cpu1' : 'unpinned'}, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    for (const r of rows) {
      const runsText = r.pps.map((p) => `${(p / 1e3).toFixed(0)}k`).join(' / ');
      const best = Math.max(...r.pps);
      console.log(`${r.what.padEnd(44)} median ${(median(r.pps) / 1e3).toFixed(0).padStart(5)} k pps, best ${(best / 1e3).toFixed(0).padStart(5)} k  (${runsText})${r.extra.length ? `  ${r.extra[r.extra.length >> 1]}` : ''}`);
    }
  } finally {
    await lab.teardown();
  }
}

const role = arg('role', '');
if (role === 'tx') roleTx();
else if (role === 'rx') roleRx();
else await main();
