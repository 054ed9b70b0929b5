/**
 * Control-plane benchmarks: how long ipvsadm-level operations take as the table
 * grows, in-process (LocalIpvsApi, what `ulvs replay` and the tests use) and
 * through the data-plane worker proxy (WorkerIpvsApi, what the daemon serves).
 * No root, no packet I/O (the worker runs with backend 'none').
 *
 *   npm run bench:ctl -- [--json] [--quick] [--sizes 10,1000,5000] [--mode local,worker,guard] [--runs N]
 *
 * For each mode and each table size N (services, each with 2 dests):
 *   restore      `ipvsadm -R` of the N-service save text into an empty table (ms total, µs per line)
 *   add-service  one addService into the N-service table (µs; the service is deleted again, untimed)
 *   add-dest     one addDest to one of the N services (µs; a new address each time, left in place)
 *   get-services one getServices() snapshot (ms)
 *   list         `ipvsadm -Ln` formatted to a string (ms)
 *   flush        `ipvsadm -C` of the N-service table (ms)
 * --mode guard (root, nft, `ip netns`; not in the default run): the nftables guard the
 * daemon runs with packet I/O, in a scratch network namespace. For each N: the rules
 * of N services (a VIP and one NAT real server each) are loaded, then one service is
 * added and deleted again, one change at a time (hide-change: one nftables
 * transaction), written through libnftables in-process (what the daemon does) and
 * by the nft program (the fallback).
 * Latencies are wall-clock medians (performance.now): a worker round trip spans two
 * threads, so the CPU time of one thread would miss half of it. The machines these
 * run on are shared, so only medians are reported.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Director } from '../src/core/director.js';
import { StaticNeighbours } from '../src/neigh/static.js';
import { DataPlane } from '../src/io/dataplane.js';
import { KernelGuard } from '../src/io/kernel-guard.js';
import type { HideChange, HideReal, HideVip } from '../src/io/worker-protocol.js';
import { runIpvsadm } from '../src/cli/ipvsadm/run.js';
import { numericResolver } from '../src/cli/ipvsadm/resolver.js';
import type { IpvsApi } from '../src/ctl/api.js';
import type { DestSpec, ServiceKey, ServiceSpec } from '../src/ctl/types.js';
import { formatIp4 } from '../src/util/ip.js';
import { FWD_DROUTE, FWD_MASQ, PROTO_TCP } from '../src/svc/types.js';

const args = process.argv.slice(2);
const JSON_OUT = args.includes('--json');
const QUICK = args.includes('--quick');
const flagValue = (f: string): string | undefined => { const i = args.indexOf(f); return i >= 0 ? args[i + 1] : undefined; };
const SIZES = (flagValue('--sizes') ?? '10,1000,5000').split(',').map(Number);
const MODES = (flagValue('--mode') ?? 'local,worker').split(',') as Array<'local' | 'worker' | 'guard'>;
const RUNS = Number(flagValue('--runs') ?? (QUICK ? 1 : 3));
/** Timed single operations per measurement (add-service, add-dest). */
const OPS = QUICK ? 50 : 200;
/** Timed listings per measurement. */
const LISTS = QUICK ? 3 : 7;

const log = (s: string): void => { if (!JSON_OUT) process.stdout.write(s + '\n'); };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// Not `node --expose-gc`: a Worker refuses to start with that in execArgv, so the flag is set here.
setFlagsFromString('--expose_gc');
const fullGc = runInNewContext('gc') as () => void;

function gc(): void {
  fullGc();
  fullGc();
}

/** Service i: 10.0.0.1, 10.0.0.2, … port 80 (the i-th address after 10.0.0.0). */
const svcAddr = (i: number): string => formatIp4((0x0a000000 + i + 1) >>> 0);
const svcKey = (i: number): ServiceKey => ({ af: 4, protocol: PROTO_TCP, addr: svcAddr(i), port: 80, fwmark: 0 });
/** Dests of the restored table: 172.16.0.0/12, two per service. */
const destAddr = (i: number, k: number): string => formatIp4((0xac100000 + 2 * i + k + 1) >>> 0);

function saveText(n: number): string {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    out.push(`-A -t ${svcAddr(i)}:80 -s wlc`);
    out.push(`-a -t ${svcAddr(i)}:80 -r ${destAddr(i, 0)}:8080 -m -w 1`);
    out.push(`-a -t ${svcAddr(i)}:80 -r ${destAddr(i, 1)}:80 -g -w 2`);
  }
  return out.join('\n') + '\n';
}

async function ipvsadm(api: IpvsApi, argv: string[], stdin = ''): Promise<string> {
  let out = '';
  let err = '';
  const io = { stdout: (s: string) => { out += s; }, stderr: (s: string) => { err += s; }, readStdin: async () => stdin };
  const status = await runIpvsadm('ipvsadm', argv, io, api, numericResolver);
  if (status !== 0 || err !== '') throw new Error(`ipvsadm ${argv.join(' ')}: status ${status}: ${err}`);
  return out;
}

interface Target {
  api: IpvsApi;
  close(): Promise<void>;
}

async function makeTarget(mode: 'local' | 'worker'): Promise<Target> {
  if (mode === 'local') {
    const d = new Director({ mac: new Uint8Array(6), ip4: 0, neigh: new StaticNeighbours(), capacity: 4096 });
    return { api: d.api, close: async () => {} };
  }
  const dp = await DataPlane.create({ backend: 'none', capacity: 4096 });
  return { api: dp.api, close: () => dp.stop() };
}

interface Result {
  mode: string;
  services: number;
  restore_ms: number;
  restore_us_per_line: number;
  add_service_us: number;
  add_dest_us: number;
  get_services_ms: number;
  list_ms: number;
  flush_ms: number;
}

async function measure(mode: 'local' | 'worker', n: number): Promise<Result> {
  const text = saveText(n);
  const lines = 3 * n;
  const restore: number[] = [];
  const flush: number[] = [];
  const addSvc: number[] = [];
  const addDest: number[] = [];
  const getSvcs: number[] = [];
  const list: number[] = [];
  const t = await makeTarget(mode);
  try {
    const api = t.api;
    for (let run = 0; run < RUNS; run++) {
      gc();
      let t0 = performance.now();
      await ipvsadm(api, ['-R'], text);
      restore.push(performance.now() - t0);

      // addService into the N-service table; deleted again so every sample sees N services.
      for (let k = 0; k < OPS; k++) {
        const key = svcKey(n + 1 + k);
        const spec: ServiceSpec = { ...key, schedName: 'wlc', flags: 0, timeout: 0, netmask: '255.255.255.255', pe: '' };
        t0 = performance.now();
        await api.addService(spec);
        addSvc.push(performance.now() - t0);
        await api.delService(key);
      }
      // addDest to services spread over the table; each dest address new (nothing revived from the trash).
      for (let k = 0; k < OPS; k++) {
        const d: DestSpec = {
          af: 4, addr: formatIp4((0xc0a80000 + run * OPS + k + 1) >>> 0), port: 80, fwdMethod: k % 2 ? FWD_MASQ : FWD_DROUTE,
          weight: 1, uThreshold: 0, lThreshold: 0, tunType: 0, tunPort: 0, tunFlags: 0,
        };
        const key = svcKey((k * 7919) % n);
        t0 = performance.now();
        await api.addDest(key, d);
        addDest.push(performance.now() - t0);
      }
      gc();
      for (let k = 0; k < LISTS; k++) {
        t0 = performance.now();
        const s = await api.getServices();
        getSvcs.push(performance.now() - t0);
        if (s.length !== n) throw new Error(`getServices: ${s.length} services, want ${n}`);
      }
      for (let k = 0; k < LISTS; k++) {
        t0 = performance.now();
        const out = await ipvsadm(api, ['-Ln']);
        list.push(performance.now() - t0);
        if (out.length < n * 100) throw new Error('ipvsadm -Ln: output too short');
      }
      t0 = performance.now();
      await ipvsadm(api, ['-C']);
      flush.push(performance.now() - t0);
      if ((await api.getInfo()).numServices !== 0) throw new Error('flush left services behind');
    }
  } finally {
    await t.close();
  }
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  const rst = median(restore);
  return {
    mode, services: n,
    restore_ms: r3(rst), restore_us_per_line: r3((rst * 1000) / lines),
    add_service_us: r3(median(addSvc) * 1000), add_dest_us: r3(median(addDest) * 1000),
    get_services_ms: r3(median(getSvcs)), list_ms: r3(median(list)), flush_ms: r3(median(flush)),
  };
}

interface GuardResult {
  mode: 'guard';
  /** How the transactions were run: 'libnftables' (in-process, the daemon's way) or 'nft program'. */
  via: string;
  services: number;
  rules: number;
  hide_change_us: number;
}

/**
 * Per-change cost of the nftables guard with N services' rules loaded (see the header).
 * The guard writes to the namespace it runs in, so this re-runs the script inside a
 * scratch namespace (`--guard-inner`), where it measures both ways of writing.
 */
async function measureGuard(sizes: number[]): Promise<GuardResult[]> {
  if (!args.includes('--guard-inner')) {
    const ns = `ulvsbench${process.pid}`;
    const made = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`guard mode needs root and ip netns: ${made.stderr.trim()}`);
    try {
      const inner = spawnSync('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--guard-inner',
        '--sizes', sizes.join(','), ...(QUICK ? ['--quick'] : [])], { encoding: 'utf8', maxBuffer: 1 << 24 });
      if (inner.status !== 0) throw new Error(`guard measurement failed: ${inner.stderr.trim()}`);
      return JSON.parse(inner.stdout) as GuardResult[];
    } finally {
      spawnSync('ip', ['netns', 'del', ns]);
    }
  }
  const out: GuardResult[] = [];
  const vip = (i: number): HideVip => ({ af: 4, proto: PROTO_TCP, addr: svcAddr(i), port: 80 });
  const real = (i: number): HideReal => ({ af: 4, proto: PROTO_TCP, addr: destAddr(i, 0), port: 8080 });
  const change = (add: number[], del: number[]): HideChange => ({
    add: { vips: add.map(vip), reals: add.map(real) }, del: { vips: del.map(vip), reals: del.map(real) },
  });
  for (const inProcess of [true, false]) {
    const guard = KernelGuard.install(`ulvs_bench${process.pid}`, undefined, { inProcess });
    const via = guard.inProcess ? 'libnftables' : 'nft program';
    if (inProcess && !guard.inProcess) { await guard.remove(); continue; } // no libnftables here
    try {
      let have = 0;
      for (const n of [...sizes].sort((a, b) => a - b)) {
        // Loading: big changes (one transaction each), untimed.
        while (have < n) {
          const upto = Math.min(n, have + 500);
          await guard.apply(change(Array.from({ length: upto - have }, (_, k) => have + k), []));
          have = upto;
        }
        const lat: number[] = [];
        for (let k = 0; k < (QUICK ? 5 : 15); k++) {
          const extra = 1_000_000 + k;
          let t0 = performance.now();
          await guard.apply(change([extra], []));
          lat.push(performance.now() - t0);
          t0 = performance.now();
          await guard.apply(change([], [extra]));
          lat.push(performance.now() - t0);
        }
        out.push({ mode: 'guard', via, services: n, rules: 2 * n, hide_change_us: Math.round(median(lat) * 1000) });
      }
    } finally {
      await guard.remove();
    }
  }
  return out;
}

async function main(): Promise<void> {
  if (args.includes('--guard-inner')) {
    process.stdout.write(JSON.stringify(await measureGuard(SIZES)) + '\n');
    return;
  }
  const results: Array<Result | GuardResult> = [];
  log(`control plane: ${RUNS} run(s) per size, ${OPS} timed adds, ${LISTS} listings; medians, wall clock`);
  log('mode    services  restore ms (µs/line)  add-service µs  add-dest µs  getServices ms  -Ln ms  -C ms');
  for (const mode of MODES) {
    if (mode === 'guard') {
      for (const r of await measureGuard(SIZES)) {
        results.push(r);
        log(`guard   ${String(r.services).padStart(8)}  one hide change, ${r.rules} rules loaded, ${r.via}: ${(r.hide_change_us / 1000).toFixed(2)} ms`);
      }
      continue;
    }
    for (const n of SIZES) {
      const r = await measure(mode, n);
      results.push(r);
      log(`${mode.padEnd(7)} ${String(n).padStart(8)}  ${r.restore_ms.toFixed(1).padStart(10)} (${r.restore_us_per_line.toFixed(1).padStart(7)})` +
        `  ${r.add_service_us.toFixed(1).padStart(14)}  ${r.add_dest_us.toFixed(1).padStart(11)}` +
        `  ${r.get_services_ms.toFixed(2).padStart(14)}  ${r.list_ms.toFixed(1).padStart(6)}  ${r.flush_ms.toFixed(1).padStart(5)}`);
    }
  }
  if (JSON_OUT) process.stdout.write(JSON.stringify({ runs: RUNS, ops: OPS, lists: LISTS, results }, null, 2) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
