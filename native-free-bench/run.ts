/**
 * Native-free hot-path benchmarks: the real engine (parse, connection lookup,
 * scheduling, rewrite, checksums) over frames in memory. No root, no addon.
 *
 *   npm run bench -- [--json] [--quick] [--smoke] [--conns N] [--packets N] [--c-ref] [--scaling] [--case TEXT]
 *
 * Established cases: N live connections (default 100,000) opened and established
 * through the engine, then frames in random flow order in batches of 64, like the
 * AF_PACKET backend delivers them. Each batch is refilled from a pristine ring
 * read sequentially (wire.ts); engine time is CPU time of refill + process()
 * minus CPU time of the same refill alone (the least of three), and both are reported
 * (ns_per_packet, copy_ns_per_packet, total_ns_per_packet).
 * New-connection cases: one SYN per new client tuple → schedule over 16 dests →
 * insert → NAT rewrite, per scheduler.
 * Scheduler-only cases use the `benchmark` package (one call = one op).
 * bytes_per_conn: a table of 1,000,000 live NAT connections, measured.
 *
 * Optional (the default run stays short):
 *   --c-ref    the C reference of the established NAT-in loop (nat-ref.c, built
 *              with `cc -O2` when there is a compiler), and JS ns ÷ C ns
 *   --scaling  NAT-in at 1k, 100k, 1M (and 4M if memory allows) connections, with
 *              the C reference at each size under --c-ref; new-connection cost per
 *              scheduler at 16, 256 and 4096 destinations
 *   --smoke    every case (optional ones included) for a fraction of a second: CI
 *   --case T   only the cases whose name contains T
 *   --packets N  frames per timed run of the established cases (default 2,000,000)
 * Every number is the median of several runs; CPU time, not wall time, because
 * these machines are shared and noisy. Set GLIBC_TUNABLES=glibc.malloc.hugetlb=1
 * to put the big tables on transparent huge pages (fewer TLB misses).
 */
import Benchmark from 'benchmark';
import { freemem } from 'node:os';
import { Director } from '../src/core/director.js';
import { V_FORWARD } from '../src/io/batch.js';
import { StaticNeighbours } from '../src/neigh/static.js';
import { buildTcp } from '../src/packet/build.js';
import { parseMac } from '../src/util/mac.js';
import { ip4, parseIp4 } from '../src/util/ip.js';
import { SCHEDULER_NAMES } from '../src/sched/registry.js';
import { newSchedPacket } from '../src/sched/types.js';
import { ADDR_D } from '../src/conn/table.js';
import { FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, PROTO_TCP, type Service } from '../src/svc/types.js';
import { BATCH, TcpTemplate, Wire } from './wire.js';
import { CRef } from './cref.js';

const args = process.argv.slice(2);
const JSON_OUT = args.includes('--json');
const SMOKE = args.includes('--smoke');
const QUICK = args.includes('--quick') || SMOKE;
const WANT_CREF = args.includes('--c-ref') || SMOKE;
const WANT_SCALING = args.includes('--scaling') || SMOKE;
const flagValue = (f: string): string | undefined => { const i = args.indexOf(f); return i >= 0 ? args[i + 1] : undefined; };
const CASE_FILTER = flagValue('--case') ?? '';
const N_CONNS = Number(flagValue('--conns') ?? (SMOKE ? 1000 : QUICK ? 10_000 : 100_000));
const RUNS = SMOKE ? 1 : QUICK ? 3 : 5;
const PKTS_PER_RUN = Number(flagValue('--packets') ?? (SMOKE ? 20_000 : QUICK ? 200_000 : 2_000_000));
const NEW_CONNS_PER_RUN = SMOKE ? 4096 : QUICK ? 20_000 : 200_000;
const N_DESTS = 16;

const DIR_MAC = '02:00:00:00:00:01';
const CLIENT_MAC = '02:00:00:00:00:c1';
const VIP = '10.0.0.100';
const VIP_N = parseIp4(VIP)!;
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
const notes: string[] = [];
const log = (s: string): void => { if (!JSON_OUT) process.stdout.write(s + '\n'); };
const wanted = (name: string): boolean => CASE_FILTER === '' || name.includes(CASE_FILTER);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** Packets per second in millions; 0 when the time is too small to measure (--smoke). */
function mpps(ns: number): number {
  return ns > 0 ? round(1e3 / ns) : 0;
}

/** Deterministic xorshift32 so every run sees the same flows. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x;
  };
}

/** Destination i: 10.1.0.1, 10.1.0.2, ... (250 per /24), one MAC each. */
function destIp(i: number): string {
  return `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

function destMac(i: number): Uint8Array {
  return Uint8Array.of(2, 0, 0, 0x10, (i >> 8) & 0xff, i & 0xff);
}

function newDirector(capacity: number, nDests = N_DESTS): Director {
  const neigh = new StaticNeighbours();
  for (let i = 0; i < nDests; i++) neigh.set(ip4(parseIp4(destIp(i))!), destMac(i));
  neigh.setGateway(parseMac('02:00:00:00:00:fe')!);
  const d = new Director({ mac: parseMac(DIR_MAC)!, ip4: parseIp4('192.0.2.1')!, neigh, capacity, seed: 7 });
  d.setClock(1000);
  return d;
}

async function addService(d: Director, sched: string, method: number, nDests = N_DESTS): Promise<void> {
  await d.api.addService({ af: 4, protocol: PROTO_TCP, addr: VIP, port: 80, fwmark: 0, schedName: sched, flags: 0, timeout: 0, netmask: '255.255.255.255', pe: '' });
  for (let i = 0; i < nDests; i++) {
    await d.api.addDest({ af: 4, protocol: PROTO_TCP, addr: VIP, port: 80, fwmark: 0 }, {
      af: 4, addr: destIp(i), port: method === FWD_MASQ ? 8080 : 80, fwdMethod: method, weight: sched === 'ovf' ? 65535 : 1 + (i % 4),
      uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0,
    });
  }
}

/**
 * Client i's address and port, distinct tuples: 172.16.0.0/12 for the first 2^20
 * clients (nat-ref.c uses the same), 11.0.0.0/8 beyond.
 */
function clientAddr(i: number): number {
  if (i >= 1 << 20) return (0x0b000000 + i) >>> 0;
  return ((172 << 24) | ((16 + ((i >>> 16) & 15)) << 16) | (((i >>> 8) & 255) << 8) | ((i & 255) || 1)) >>> 0;
}

function clientPort(i: number): number {
  return 1024 + ((i * 7) % 60000);
}

const synTpl = new TcpTemplate(buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: '172.16.0.1', daddr: VIP, sport: 1024, dport: 80, flags: SYN }));
const ackTpl = new TcpTemplate(buildTcp({ srcMac: CLIENT_MAC, dstMac: DIR_MAC, saddr: '172.16.0.1', daddr: VIP, sport: 1024, dport: 80, flags: ACK, seq: 1, ack: 1 }));
const replyTpl = new TcpTemplate(buildTcp({ srcMac: '02:00:00:00:10:10', dstMac: DIR_MAC, saddr: '10.1.0.1', daddr: '172.16.0.1', sport: 8080, dport: 1024, flags: ACK, seq: 1, ack: 1 }));

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) { g(); g(); }
}

interface Timing { ns: number; copyNs: number; forwarded: number }

/**
 * `count` frames from ring position `start` through the engine, then the same
 * refills alone; CPU time of each (process.cpuUsage).
 */
function runFrames(d: Director, wire: Wire, start: number, count: number): Timing {
  const engine = d.engine;
  const b = wire.batch;
  const tx = wire.tx;
  let forwarded = 0;
  const c0 = process.cpuUsage();
  for (let k = 0; k < count; k += BATCH) {
    const n = wire.refill(start + k, count - k);
    tx.clear();
    engine.process(b, tx);
    for (let j = 0; j < n; j++) if (b.verdict[j] === V_FORWARD) forwarded++;
  }
  const c1 = process.cpuUsage(c0);
  // The refill alone, three times, the least kept: process CPU time counts every thread, and
  // V8's background compiler or GC landing in this short loop once made it longer than the
  // engine's whole loop in a --smoke run (a new-connection case measured "0 ns").
  let sink = 0;
  let copyNs = Infinity;
  for (let rep = 0; rep < 3; rep++) {
    const r0 = process.cpuUsage();
    for (let k = 0; k < count; k += BATCH) {
      const n = wire.refill(start + k, count - k);
      for (let j = 0; j < n; j++) sink += b.verdict[j]!;
    }
    const r1 = process.cpuUsage(r0);
    copyNs = Math.min(copyNs, (r1.user + r1.system) * 1e3 + (sink & 0));
  }
  return { ns: Math.max(0, (c1.user + c1.system) * 1e3 - copyNs), copyNs, forwarded };
}

/** Sends `count` frames made by `make(i, wire, k)` through the engine in ring-sized chunks (setup, untimed). */
function feed(d: Director, wire: Wire, count: number, make: (i: number, k: number) => void): number {
  let fwd = 0;
  for (let base = 0; base < count; base += wire.size) {
    const n = Math.min(wire.size, count - base);
    for (let k = 0; k < n; k++) make(base + k, k);
    fwd += runFrames(d, wire, 0, n).forwarded;
  }
  return fwd;
}

function ringSize(n: number): number {
  return Math.min(Math.max(n, 1 << 16), 1 << 20);
}

function tableCapacity(n: number): number {
  return Math.max(1 << 19, n + (n >>> 4));
}

async function established(name: string, method: number, direction: 'in' | 'out', nConns: number): Promise<Result | null> {
  if (!wanted(name)) return null;
  const d = newDirector(tableCapacity(nConns));
  await addService(d, 'wlc', method);
  const wire = new Wire(ringSize(nConns));
  // Open and establish every connection through the engine (SYN, then the client's ACK).
  if (feed(d, wire, nConns, (i, k) => wire.setTcp(k, synTpl, clientAddr(i), clientPort(i), VIP_N, 80)) !== nConns ||
      d.conns.count < nConns) {
    throw new Error(`${name}: only ${d.conns.count} connections opened`);
  }
  feed(d, wire, nConns, (i, k) => wire.setTcp(k, ackTpl, clientAddr(i), clientPort(i), VIP_N, 80));
  // The timed frames: client ACKs (in) or real-server replies (out), in random flow order.
  const r = rng(12345);
  const caddr = new Uint32Array(4);
  const vaddr = Uint32Array.of(VIP_N, 0, 0, 0);
  const w = new Uint32Array(4);
  for (let k = 0; k < wire.size; k++) {
    const i = r() % nConns;
    if (direction === 'in') {
      wire.setTcp(k, ackTpl, clientAddr(i), clientPort(i), VIP_N, 80);
    } else {
      caddr[0] = clientAddr(i);
      const id = d.conns.lookupIn(4, PROTO_TCP, caddr, clientPort(i), vaddr, 80);
      d.conns.getAddr(id, ADDR_D, w);
      wire.setTcp(k, replyTpl, w[0]!, d.conns.dport[id]!, clientAddr(i), clientPort(i));
    }
  }
  // Warm up (JIT: both timed loops), then timed runs.
  runFrames(d, wire, 0, Math.min(200_000, PKTS_PER_RUN));
  runFrames(d, wire, 0, Math.min(200_000, PKTS_PER_RUN));
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const hits0 = d.engine.fast.hits;
  const per: number[] = [];
  const copies: number[] = [];
  let fwd = 0;
  for (let run = 0; run < RUNS; run++) {
    const x = runFrames(d, wire, run * 7919, PKTS_PER_RUN);
    per.push(x.ns / PKTS_PER_RUN);
    copies.push(x.copyNs / PKTS_PER_RUN);
    fwd = x.forwarded;
  }
  gc();
  const heap1 = process.memoryUsage().heapUsed;
  if (fwd !== PKTS_PER_RUN) throw new Error(`${name}: forwarded ${fwd} of ${PKTS_PER_RUN}`);
  const ns = median(per);
  const copy = median(copies);
  const res: Result = {
    case: name, ns_per_packet: round(ns), mpps: mpps(ns), runs: RUNS, live_conns: d.conns.count,
    copy_ns_per_packet: round(copy), total_ns_per_packet: round(ns + copy), heap_growth_bytes: heap1 - heap0,
    packets_per_run: PKTS_PER_RUN, fast_path_share: round((d.engine.fast.hits - hits0) / (RUNS * PKTS_PER_RUN)),
  };
  results.push(res);
  log(`${name.padEnd(28)} ${ns.toFixed(1).padStart(7)} ns/pkt ${mpps(ns).toFixed(2).padStart(6)} Mpps  (refill ${copy.toFixed(1)} ns/pkt, heap growth ${heap1 - heap0} B, ${d.conns.count} conns)`);
  return res;
}

async function newConn(sched: string, nDests = N_DESTS, suffix = ''): Promise<void> {
  const name = `new-conn-${sched}${suffix}`;
  if (!wanted(name)) return;
  const d = newDirector(1 << 20, nDests);
  await addService(d, sched, FWD_MASQ, nDests);
  const wire = new Wire(NEW_CONNS_PER_RUN);
  for (let i = 0; i < NEW_CONNS_PER_RUN; i++) wire.setTcp(i, synTpl, clientAddr(i), clientPort(i), VIP_N, 80);
  const per: number[] = [];
  const copies: number[] = [];
  let heap0 = 0;
  for (let run = 0; run < RUNS + 1; run++) {
    d.conns.flush(d.now);
    if (run === 1) { gc(); heap0 = process.memoryUsage().heapUsed; }
    const x = runFrames(d, wire, 0, NEW_CONNS_PER_RUN);
    if (x.forwarded !== NEW_CONNS_PER_RUN) throw new Error(`${name}: forwarded ${x.forwarded} of ${NEW_CONNS_PER_RUN}`);
    if (run > 0) { per.push(x.ns / NEW_CONNS_PER_RUN); copies.push(x.copyNs / NEW_CONNS_PER_RUN); } // run 0 warms up the JIT
  }
  d.conns.flush(d.now);
  gc();
  const heapGrowth = process.memoryUsage().heapUsed - heap0;
  const ns = median(per);
  results.push({
    case: name, ns_per_packet: round(ns), mpps: mpps(ns), runs: RUNS, dests: nDests,
    copy_ns_per_packet: round(median(copies)), heap_growth_bytes: heapGrowth,
  });
  log(`${name.padEnd(28)} ${ns.toFixed(1).padStart(7)} ns/pkt ${mpps(ns).toFixed(2).padStart(6)} Mpps  (${nDests} dests)`);
}

/** schedule() alone, with the `benchmark` package: one op = one pick over 16 dests. */
async function schedOnly(sched: string): Promise<void> {
  const name = `sched-${sched}`;
  if (!wanted(name)) return;
  const d = newDirector(1024);
  await addService(d, sched, FWD_MASQ);
  const svc: Service = d.table.services()[0]!;
  const sp = newSchedPacket();
  sp.af = 4; sp.protocol = PROTO_TCP; sp.daddr[0] = VIP_N; sp.dport = 80;
  let i = 0;
  const env = d.table.schedEnv;
  const s = svc.scheduler!;
  const bench = new Benchmark(name, () => {
    sp.saddr[0] = (0xac100000 + (i++ & 0xffff)) >>> 0;
    sp.sport = 1024 + (i & 0x7fff);
    s.schedule(svc, sp, env);
  }, { maxTime: SMOKE ? 0.05 : QUICK ? 0.2 : 1, minSamples: SMOKE ? 2 : QUICK ? 5 : 20 });
  await new Promise<void>((resolve) => { bench.on('complete', () => resolve()).run(); });
  const ns = bench.stats.mean * 1e9;
  results.push({ case: name, ns_per_packet: round(ns), mpps: mpps(ns), runs: bench.stats.sample.length, rme_percent: round(bench.stats.rme) });
  log(`${name.padEnd(28)} ${ns.toFixed(1).padStart(7)} ns/op  ±${bench.stats.rme.toFixed(1)}%`);
}

/** Memory per connection, measured: fill a table of n live NAT connections. */
async function bytesPerConn(n: number): Promise<{ measured: number; arrays: number }> {
  gc();
  const m0 = process.memoryUsage();
  const d = newDirector(n);
  await addService(d, 'rr', FWD_MASQ);
  const dests = d.table.services()[0]!.dests;
  const ca = new Uint32Array(4);
  const va = Uint32Array.of(VIP_N, 0, 0, 0);
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
  // `external` already includes `arrayBuffers` (typed array memory): count it once.
  const measured = (m1.heapUsed + m1.external - m0.heapUsed - m0.external) / n;
  const arrays = d.conns.bytesPerConn();
  log(`bytes per connection at ${n}: ${measured.toFixed(1)} measured (typed arrays alone ${arrays.toFixed(1)})`);
  return { measured, arrays };
}

/** The C reference next to the JavaScript NAT-in result for the same connection count. */
function cReference(cref: CRef, js: Result | null, nConns: number, suffix: string): void {
  const name = `c-ref-nat-in-established${suffix}`;
  if (!wanted(name) && !(js !== null && wanted(js.case))) return;
  if (!cref.build()) return;
  const c = cref.run(nConns, PKTS_PER_RUN, tableCapacity(nConns), RUNS);
  if (c === null) { notes.push(`${name}: the C reference failed to run`); return; }
  results.push({
    case: name, ns_per_packet: round(c.nsPerPacket), mpps: mpps(c.nsPerPacket), runs: RUNS, live_conns: nConns,
    plain_ns_per_packet: round(c.plainNsPerPacket), copy_ns_per_packet: round(c.refillNsPerPacket),
  });
  let ratio = '';
  if (js !== null) {
    js.js_over_c = round(js.ns_per_packet / c.nsPerPacket);
    js.c_ns_per_packet = round(c.nsPerPacket);
    ratio = `, JS ÷ C = ${js.js_over_c}`;
  }
  log(`${name.padEnd(28)} ${c.nsPerPacket.toFixed(1).padStart(7)} ns/pkt ${mpps(c.nsPerPacket).toFixed(2).padStart(6)} Mpps  (without prefetch ${c.plainNsPerPacket.toFixed(1)} ns/pkt${ratio})`);
}

/** Connection counts for --scaling: 1k, 100k, 1M and 4M when there is room (about 1 KiB per connection with the bench's rings). */
function scalingSizes(): [number, string][] {
  if (SMOKE) return [[1000, '-1k'], [2000, '-2k']];
  const sizes: [number, string][] = [[1000, '-1k'], [100_000, '-100k'], [1_000_000, '-1m']];
  if (freemem() > 4_000_000 * 1024 + (1 << 30)) sizes.push([4_000_000, '-4m']);
  else notes.push('nat-in-established-4m skipped: not enough free memory');
  return sizes;
}

async function main(): Promise<void> {
  log(`ulvs native-free bench: ${N_CONNS} live connections, batches of ${BATCH}, ${RUNS} runs, median; node ${process.version}`);
  const cref = new CRef();
  const natIn = await established('nat-in-established', FWD_MASQ, 'in', N_CONNS);
  if (WANT_CREF) cReference(cref, natIn, N_CONNS, '');
  await established('nat-out-established', FWD_MASQ, 'out', N_CONNS);
  await established('dr-established', FWD_DROUTE, 'in', N_CONNS);
  await established('tun-established', FWD_TUNNEL, 'in', N_CONNS);
  for (const s of SCHEDULER_NAMES) await newConn(s);
  for (const s of SCHEDULER_NAMES) await schedOnly(s);
  if (WANT_SCALING) {
    for (const [n, suffix] of scalingSizes()) {
      const js = await established(`nat-in-established${suffix}`, FWD_MASQ, 'in', n);
      if (WANT_CREF) cReference(cref, js, n, suffix);
      gc();
    }
    const destCounts = SMOKE ? [16, 64] : [16, 256, 4096];
    for (const s of SCHEDULER_NAMES) for (const n of destCounts) await newConn(s, n, `-dests-${n}`);
  }
  if (WANT_CREF && cref.missing !== null) notes.push(`C reference skipped: ${cref.missing}`);
  cref.cleanup();
  const mem = wanted('bytes_per_conn') || CASE_FILTER === '' ? await bytesPerConn(SMOKE ? 10_000 : QUICK ? 100_000 : 1_000_000) : null;
  for (const n of notes) log(`note: ${n}`);
  if (JSON_OUT) {
    process.stdout.write(JSON.stringify({
      results, bytes_per_conn: mem === null ? null : round(mem.measured), bytes_per_conn_typed_arrays: mem === null ? null : round(mem.arrays),
      live_conns: N_CONNS, batch: BATCH, node: process.version, quick: QUICK, smoke: SMOKE, notes,
    }) + '\n');
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
