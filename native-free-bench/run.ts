/**
 * Native-free hot-path benchmarks: the real engine (parse, connection lookup,
 * scheduling, rewrite, checksums) over frames in memory. No root, no addon.
 *
 *   npm run bench -- [--json] [--quick] [--conns N]
 *
 * Established cases: N live connections (default 100,000), frames in random flow
 * order, processed in batches of 64 like the AF_PACKET backend delivers them. The
 * engine rewrites frames in place, so each batch is refilled from a pristine slab
 * first (as a backend's receive copies); only `engine.process()` is timed, the
 * refill is measured separately as `copy_ns_per_packet`.
 * New-connection cases: one SYN per new client tuple → schedule over 16 dests →
 * insert → NAT rewrite, per scheduler.
 * Scheduler-only cases use the `benchmark` package (one call = one op).
 * Every number is the median of several runs; these machines are noisy.
 */
import Benchmark from 'benchmark';
import { Director } from '../src/core/director.js';
import { FrameBatch, TxQueue, V_FORWARD } from '../src/io/batch.js';
import { StaticNeighbours } from '../src/neigh/static.js';
import { buildTcp } from '../src/packet/build.js';
import { parseMac } from '../src/util/mac.js';
import { ip4, parseIp4, formatIp4 } from '../src/util/ip.js';
import { SCHEDULER_NAMES } from '../src/sched/registry.js';
import { newSchedPacket } from '../src/sched/types.js';
import { ADDR_D } from '../src/conn/table.js';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, PROTO_TCP, type Service } from '../src/svc/types.js';

const args = process.argv.slice(2);
const JSON_OUT = args.includes('--json');
const QUICK = args.includes('--quick');
const connsArg = args.indexOf('--conns');
const N_CONNS = connsArg >= 0 ? Number(args[connsArg + 1]) : QUICK ? 10_000 : 100_000;
const RUNS = QUICK ? 1 : 5;
const PKTS_PER_RUN = QUICK ? 100_000 : 2_000_000;
const NEW_CONNS_PER_RUN = QUICK ? 20_000 : 200_000;
const BATCH = 64;
const N_DESTS = 16;

const DIR_MAC = '02:00:00:00:00:01';
const CLIENT_MAC = '02:00:00:00:00:c1';
const VIP = '10.0.0.100';
const SYN = 0x02;
const ACK = 0x10;

interface Result {
  case: string;
  ns_per_packet: number;
  mpps: number;
  runs: number;
  [k: string]: number | string;
}

const results: Result[] = [];
const log = (s: string): void => { if (!JSON_OUT) process.stdout.write(s + '\n'); };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Deterministic xorshift32 so every run sees the same flows. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
}

function destIp(i: number): string {
  return `10.1.${i >> 8}.${(i & 255) + 1}`;
}

function newDirector(capacity: number): { d: Director; neigh: StaticNeighbours } {
  const neigh = new StaticNeighbours();
  for (let i = 0; i < N_DESTS; i++) neigh.set(ip4(parseIp4(destIp(i))!), parseMac(`02:00:00:00:10:${(i + 16).toString(16)}`)!);
  neigh.setGateway(parseMac('02:00:00:00:00:fe')!);
  const d = new Director({ mac: parseMac(DIR_MAC)!, ip4: parseIp4('192.0.2.1')!, neigh, capacity, seed: 7 });
  d.setClock(1000);
  return { d, neigh };
}

async function addService(d: Director, sched: string, method: number, tunType = 0): Promise<void> {
  await d.api.addService({ af: 4, protocol: PROTO_TCP, addr: VIP, port: 80, fwmark: 0, schedName: sched, flags: 0, timeout: 0, netmask: '255.255.255.255', pe: '' });
  for (let i = 0; i < N_DESTS; i++) {
    await d.api.addDest({ af: 4, protocol: PROTO_TCP, addr: VIP, port: 80, fwmark: 0 }, {
      af: 4, addr: destIp(i), port: method === FWD_MASQ ? 8080 : 80, fwdMethod: method, weight: sched === 'ovf' ? 65535 : 1 + (i % 4),
      uThreshold: 0, lThreshold: 0, tunType, tunPort: 0, tunFlags: 0,
    });
  }
}

/** Client i's address and port: distinct tuples. */
function client(i: number): { ip: string; port: number } {
  return { ip: `172.${16 + ((i >> 16) & 15)}.${(i >> 8) & 255}.${(i & 255) || 1}`, port: 1024 + ((i * 7) % 60000) };
}

class Slab {
  readonly frames: Uint8Array[] = [];
  push(f: Uint8Array): void { this.frames.push(f); }
}

/**
 * Feeds `count` frames through the engine in batches. Timing uses this process's CPU
 * time (process.cpuUsage), not wall time, so other load on the machine inflates it
 * less; the refill cost is measured by an identical loop without process() and
 * subtracted.
 */
function runFrames(d: Director, frames: Uint8Array[], order: Uint32Array, count: number, batch: FrameBatch, tx: TxQueue): { ns: number; copyNs: number; forwarded: number } {
  const engine = d.engine;
  let forwarded = 0;
  const c0 = process.cpuUsage();
  let k = 0;
  while (k < count) {
    const n = Math.min(BATCH, count - k);
    for (let j = 0; j < n; j++) batch.put(j, frames[order[(k + j) % order.length]!]!);
    batch.count = n;
    tx.clear();
    engine.process(batch, tx);
    for (let j = 0; j < n; j++) if (batch.verdict[j] === V_FORWARD) forwarded++;
    k += n;
  }
  const c1 = process.cpuUsage(c0);
  const r0 = process.cpuUsage();
  k = 0;
  let sink = 0;
  while (k < count) {
    const n = Math.min(BATCH, count - k);
    for (let j = 0; j < n; j++) batch.put(j, frames[order[(k + j) % order.length]!]!);
    batch.count = n;
    for (let j = 0; j < n; j++) sink += batch.verdict[j]!;
    k += n;
  }
  const r1 = process.cpuUsage(r0);
  const total = (c1.user + c1.system) * 1e3;
  const copyNs = (r1.user + r1.system) * 1e3 + (sink & 0);
  return { ns: Math.max(0, total - copyNs), copyNs, forwarded };
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) { g(); g(); }
}

async function established(name: string, method: number, direction: 'in' | 'out', tunType = 0): Promise<void> {
  const { d } = newDirector(1 << 19);
  await addService(d, 'wlc', method, tunType);
  const batch = new FrameBatch(BATCH);
  const tx = new TxQueue(BATCH);
  // Open N connections with SYNs through the engine itself.
  const syns: Uint8Array[] = [];
  for (let i = 0; i < N_CONNS; i++) {
    const c = client(i);
    syns.push(buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: c.ip, daddr: VIP, sport: c.port, dport: 80, flags: SYN }));
  }
  const seq = new Uint32Array(N_CONNS).map((_, i) => i);
  runFrames(d, syns, seq, N_CONNS, batch, tx);
  if (d.conns.count < N_CONNS) throw new Error(`${name}: only ${d.conns.count} connections created`);
  // The established-phase frames: client ACKs (in) or real-server replies (out).
  const slab = new Slab();
  const w = new Uint32Array(4);
  const vaddr = Uint32Array.of(parseIp4(VIP)!, 0, 0, 0);
  const caddr = new Uint32Array(4);
  for (let i = 0; i < N_CONNS; i++) {
    const c = client(i);
    if (direction === 'in') {
      slab.push(buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: c.ip, daddr: VIP, sport: c.port, dport: 80, flags: ACK, seq: 1, ack: 1 }));
    } else {
      caddr[0] = parseIp4(c.ip)!;
      const id = d.conns.lookupIn(4, PROTO_TCP, caddr, c.port, vaddr, 80);
      d.conns.getAddr(id, ADDR_D, w);
      slab.push(buildTcp({ srcMac: '02:00:00:00:10:10', dstMac: DIR_MAC, saddr: formatIp4(w[0]!), daddr: c.ip, sport: d.conns.dport[id]!, dport: c.port, flags: ACK, seq: 1, ack: 1 }));
    }
  }
  const r = rng(12345);
  const order = new Uint32Array(Math.max(N_CONNS, 1 << 18)).map(() => r() % N_CONNS);
  // Warm up (JIT), then timed runs.
  runFrames(d, slab.frames, order, Math.min(200_000, PKTS_PER_RUN), batch, tx);
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const per: number[] = [];
  const copies: number[] = [];
  let fwd = 0;
  for (let run = 0; run < RUNS; run++) {
    const x = runFrames(d, slab.frames, order, PKTS_PER_RUN, batch, tx);
    per.push(x.ns / PKTS_PER_RUN);
    copies.push(x.copyNs / PKTS_PER_RUN);
    fwd = x.forwarded;
  }
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  if (fwd !== PKTS_PER_RUN) throw new Error(`${name}: forwarded ${fwd} of ${PKTS_PER_RUN}`);
  const ns = median(per);
  results.push({
    case: name, ns_per_packet: round(ns), mpps: round(1e3 / ns), runs: RUNS, live_conns: d.conns.count,
    copy_ns_per_packet: round(median(copies)), heap_growth_bytes: heap1 - heap0, packets_per_run: PKTS_PER_RUN,
  });
  log(`${name.padEnd(24)} ${ns.toFixed(1).padStart(7)} ns/pkt ${(1e3 / ns).toFixed(2).padStart(6)} Mpps  (refill ${median(copies).toFixed(1)} ns/pkt, heap growth ${heap1 - heap0} B, ${d.conns.count} conns)`);
}

async function newConn(sched: string): Promise<void> {
  const { d } = newDirector(1 << 20);
  await addService(d, sched, FWD_MASQ);
  const batch = new FrameBatch(BATCH);
  const tx = new TxQueue(BATCH);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < NEW_CONNS_PER_RUN; i++) {
    const c = client(i);
    frames.push(buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: c.ip, daddr: VIP, sport: c.port, dport: 80, flags: SYN }));
  }
  const seq = new Uint32Array(NEW_CONNS_PER_RUN).map((_, i) => i);
  const per: number[] = [];
  for (let run = 0; run < RUNS + 1; run++) {
    d.conns.flush(d.now);
    const x = runFrames(d, frames, seq, NEW_CONNS_PER_RUN, batch, tx);
    if (x.forwarded !== NEW_CONNS_PER_RUN) throw new Error(`new-conn-${sched}: forwarded ${x.forwarded} of ${NEW_CONNS_PER_RUN}`);
    if (run > 0) per.push(x.ns / NEW_CONNS_PER_RUN); // run 0 warms up the JIT
  }
  const ns = median(per);
  results.push({ case: `new-conn-${sched}`, ns_per_packet: round(ns), mpps: round(1e3 / ns), runs: RUNS, dests: N_DESTS });
  log(`${`new-conn-${sched}`.padEnd(24)} ${ns.toFixed(1).padStart(7)} ns/pkt ${(1e3 / ns).toFixed(2).padStart(6)} Mpps`);
}

/** schedule() alone, with the `benchmark` package: one op = one pick over 16 dests. */
async function schedOnly(sched: string): Promise<void> {
  const { d } = newDirector(1024);
  await addService(d, sched, FWD_MASQ);
  const svc: Service = d.table.services()[0]!;
  const sp = newSchedPacket();
  sp.af = 4; sp.protocol = PROTO_TCP; sp.daddr[0] = parseIp4(VIP)!; sp.dport = 80;
  let i = 0;
  const env = d.table.schedEnv;
  const s = svc.scheduler!;
  const bench = new Benchmark(`sched-${sched}`, () => {
    sp.saddr[0] = (0xac100000 + (i++ & 0xffff)) >>> 0;
    sp.sport = 1024 + (i & 0x7fff);
    s.schedule(svc, sp, env);
  }, { maxTime: QUICK ? 0.2 : 1, minSamples: QUICK ? 5 : 20 });
  await new Promise<void>((resolve) => { bench.on('complete', () => resolve()).run(); });
  const ns = (bench.stats.mean * 1e9);
  results.push({ case: `sched-${sched}`, ns_per_packet: round(ns), mpps: round(1e3 / ns), runs: bench.stats.sample.length, rme_percent: round(bench.stats.rme) });
  log(`${`sched-${sched}`.padEnd(24)} ${ns.toFixed(1).padStart(7)} ns/op  ±${bench.stats.rme.toFixed(1)}%`);
}

/** Memory per connection, measured: fill a table of 1,000,000 live NAT connections. */
async function bytesPerConn(n: number): Promise<{ measured: number; arrays: number }> {
  gc();
  const m0 = process.memoryUsage();
  const { d } = newDirector(n);
  await addService(d, 'rr', FWD_MASQ);
  const dests = d.table.services()[0]!.dests;
  const ca = new Uint32Array(4);
  const va = Uint32Array.of(parseIp4(VIP)!, 0, 0, 0);
  const da = new Uint32Array(4);
  for (let i = 0; i < n; i++) {
    ca[0] = (0xac000000 + (i >>> 4)) >>> 0;
    const dest = dests[i % dests.length]!;
    da[0] = dest.addr.w0;
    if (d.conns.create(4, PROTO_TCP, ca, 1024 + (i & 15), va, 80, da, dest.port, 0, 0, dest.svc.id, dest.id, d.now) < 0) {
      throw new Error(`table full at ${i}`);
    }
  }
  gc();
  const m1 = process.memoryUsage();
  const measured = (m1.heapUsed + m1.arrayBuffers + m1.external - m0.heapUsed - m0.arrayBuffers - m0.external) / n;
  const arrays = d.conns.bytesPerConn();
  log(`bytes per connection at ${n}: ${measured.toFixed(1)} measured (typed arrays alone ${arrays.toFixed(1)})`);
  return { measured, arrays };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

async function main(): Promise<void> {
  log(`ulvs native-free bench: ${N_CONNS} live connections, batches of ${BATCH}, ${RUNS} runs, median; node ${process.version}`);
  await established('nat-in-established', FWD_MASQ, 'in');
  await established('nat-out-established', FWD_MASQ, 'out');
  await established('dr-established', FWD_DROUTE, 'in');
  await established('tun-established', FWD_TUNNEL, 'in');
  for (const s of SCHEDULER_NAMES) await newConn(s);
  for (const s of SCHEDULER_NAMES) await schedOnly(s);
  const mem = await bytesPerConn(QUICK ? 100_000 : 1_000_000);
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({
      results, bytes_per_conn: round(mem.measured), bytes_per_conn_typed_arrays: round(mem.arrays),
      live_conns: N_CONNS, batch: BATCH, node: process.version, quick: QUICK,
    }) + '\n');
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
