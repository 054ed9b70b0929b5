/**
 * `ulvs bench wire`: every path × every workload through one namespace lab, in
 * rounds (round r runs every path once), so slow drifts of this shared machine
 * hit all paths alike; each (path, workload) reports the median of its runs and
 * the ulvs paths are set against the baselines as ratios of medians, and as the
 * median of the per-round ratios (`pairedRatios`): two paths measured seconds
 * apart in one round share the machine's phase of the moment, which on this shared
 * VM moves by ±30 % from minute to minute, so pairing them by round cancels the
 * slow part of that drift that a ratio of medians keeps.
 *
 * One lab for the whole run: client (c0 towards the director, c1 straight onto
 * the bridge for `direct`), director (a plain router between paths), two real
 * servers with nginx (or Node's http server) and `iperf3 -s`.
 */
import { cpus, loadavg, release } from 'node:os';
import { buildLab, type LabTopology } from '../lab-topology.js';
import { labSupport, type LabProcess } from '../netns.js';
import { nginxAvailable } from '../servers.js';
import { benchPaths, PATHS, type BenchPath, type DrReplies, type PathName } from './paths.js';
import {
  IPERF_PORT, median, WORKLOAD_UNIT, WORKLOADS, workloadCommand, type Workload, type WorkloadResult,
} from './workloads.js';

export interface WireBenchOptions {
  paths?: PathName[];
  workloads?: Workload[];
  /** Runs per (path, workload); the median is reported (default 3). */
  runs?: number;
  /** Seconds per run (default 4). */
  seconds?: number;
  /**
   * veth offloads (tx checksum, TSO, GSO) on every lab endpoint (default true: what
   * a host runs with). With offloads on, the ulvs paths run the daemon with
   * `--vnet-hdr`, without which it must drop TSO/GSO super-frames.
   */
  offload?: boolean;
  /** Real servers' HTTP server: nginx if installed unless 'node' (default 'auto'). */
  server?: 'auto' | 'nginx' | 'node';
  /** wrk connections (default 32). */
  connections?: number;
  /** Extra `ulvs daemon` arguments for the ulvs paths. */
  daemonArgs?: string[];
  /** How DR/TUN replies reach the client (default 'direct'; paths.ts). */
  drReplies?: DrReplies;
  /** Stop starting new runs after this many seconds (default 570: the run stays under 10 minutes). */
  budgetSeconds?: number;
  log?: (line: string) => void;
}

export interface WireResult {
  path: PathName;
  workload: Workload;
  /** Median of the successful runs, or null when none succeeded or the path cannot carry the workload. */
  value: number | null;
  unit: string;
  /** Every run's value, one per round in round order (null = failed, also when the path failed to set up). */
  runs: Array<number | null>;
  /** Why a value is missing, and what went wrong in any run. */
  notes: string[];
}

export interface WireReport {
  results: WireResult[];
  /** "a/b" → workload → median(a) / median(b). */
  ratios: Record<string, Partial<Record<Workload, number | null>>>;
  /** "a/b" → workload → median over the rounds where both ran of run(a) / run(b). */
  pairedRatios: Record<string, Partial<Record<Workload, number | null>>>;
  settings: {
    runs: number;
    seconds: number;
    offload: string;
    realServers: string;
    wrk: string;
    daemonArgs: string[];
    /** How DR/TUN replies reach the client. */
    drReplies: string;
    paths: PathName[];
    workloads: Workload[];
  };
  machine: { cpus: number; cpuModel: string; kernel: string; node: string; loadavgStart: number[]; loadavgEnd: number[] };
  elapsedSeconds: number;
}

/** The ratios the report shows: each ulvs path against each baseline, and DR/TUN against NAT. */
export function ratioPairs(paths: readonly PathName[]): Array<[PathName, PathName]> {
  const have = new Set(paths);
  const pairs: Array<[PathName, PathName]> = [];
  for (const u of ['ulvs-nat', 'ulvs-dr', 'ulvs-tun', 'ulvs-tun-gue'] as const) {
    if (!have.has(u)) continue;
    for (const base of ['kernel-dnat', 'haproxy', 'direct'] as const) if (have.has(base)) pairs.push([u, base]);
  }
  for (const u of ['ulvs-dr', 'ulvs-tun', 'ulvs-tun-gue'] as const) if (have.has(u) && have.has('ulvs-nat')) pairs.push([u, 'ulvs-nat']);
  return pairs;
}

/** One ratio table: for each ratio pair "a/b" and workload, `cell(a, b, w)` rounded to 3 decimals (null: none). */
function ratioTable(paths: readonly PathName[], workloads: readonly Workload[],
  cell: (a: PathName, b: PathName, w: Workload) => number | null): WireReport['ratios'] {
  const table: WireReport['ratios'] = {};
  for (const [a, b] of ratioPairs(paths)) {
    const row: Partial<Record<Workload, number | null>> = {};
    for (const w of workloads) {
      const r = cell(a, b, w);
      row[w] = r === null ? null : Math.round(r * 1000) / 1000;
    }
    table[`${a}/${b}`] = row;
  }
  return table;
}

const resultOf = (results: readonly WireResult[], p: PathName, w: Workload): WireResult | undefined =>
  results.find((r) => r.path === p && r.workload === w);

/** median(a) / median(b) for each ratio pair and workload. */
export function computeRatios(results: readonly WireResult[], paths: readonly PathName[], workloads: readonly Workload[]): WireReport['ratios'] {
  return ratioTable(paths, workloads, (a, b, w) => {
    const va = resultOf(results, a, w)?.value ?? null;
    const vb = resultOf(results, b, w)?.value ?? null;
    return va !== null && vb !== null && vb > 0 ? va / vb : null;
  });
}

/**
 * The median of the per-round ratios a/b for each ratio pair and workload: `runs[i]` of both
 * paths come from round i (runWireBench keeps them aligned), rounds where either failed are left out.
 */
export function computePairedRatios(results: readonly WireResult[], paths: readonly PathName[], workloads: readonly Workload[]): WireReport['pairedRatios'] {
  return ratioTable(paths, workloads, (a, b, w) => {
    const ra = resultOf(results, a, w)?.runs ?? [];
    const rb = resultOf(results, b, w)?.runs ?? [];
    const each: number[] = [];
    for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
      const va = ra[i];
      const vb = rb[i];
      if (va !== null && va !== undefined && vb !== null && vb !== undefined && vb > 0) each.push(va / vb);
    }
    return median(each);
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One HTTP request through the path, retried for a few seconds: the path works before it is measured. */
async function checkPath(topo: LabTopology, host: string, port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  let last = '';
  for (;;) {
    const r = await topo.exec('client', 'curl', ['-s', '--max-time', '2', `http://${host}:${port}/`], { allowFail: true, timeoutMs: 5000 });
    if (r.code === 0 && /hello from rs\d/.test(r.stdout)) return;
    last = `curl exit ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 200)}`;
    if (Date.now() > deadline) throw new Error(`no HTTP answer through the path (${last})`);
    await sleep(200);
  }
}

async function runWorkload(topo: LabTopology, path: BenchPath, w: Workload, seconds: number, connections: number): Promise<WorkloadResult> {
  const c = workloadCommand(w, { ...path.target(topo), connections }, seconds);
  const r = await topo.exec('client', c.cmd, c.args, { allowFail: true, timeoutMs: c.timeoutMs });
  if (r.timedOut) return { value: null, note: `${c.cmd} timed out` };
  return c.parse(r.stdout, r.stderr);
}

export async function runWireBench(o: WireBenchOptions = {}): Promise<WireReport> {
  const support = labSupport();
  if (!support.ok) throw new Error(`the wire benchmark needs a network-namespace lab: ${support.reason}`);
  const t0 = Date.now();
  const log = o.log ?? (() => undefined);
  // Always in the canonical order, whatever order the options named them in: tables stay comparable.
  const paths = PATHS.filter((p) => (o.paths ?? PATHS).includes(p));
  const workloads = WORKLOADS.filter((w) => (o.workloads ?? WORKLOADS).includes(w));
  const runs = o.runs ?? 3;
  const seconds = o.seconds ?? 4;
  const connections = o.connections ?? 32;
  const offload = o.offload ?? true;
  const daemonArgs = [...(o.daemonArgs ?? [])];
  const drReplies = o.drReplies ?? 'direct';
  if (offload && !daemonArgs.includes('--vnet-hdr') && !daemonArgs.includes('--backend')) daemonArgs.unshift('--vnet-hdr');
  const budgetMs = (o.budgetSeconds ?? 570) * 1000;
  const server = o.server === 'node' ? 'node' : o.server === 'nginx' || nginxAvailable() ? 'nginx' : 'node';
  const loadavgStart = loadavg().map((x) => Math.round(x * 100) / 100);

  const table = benchPaths();
  const results = new Map<string, WireResult>();
  for (const p of paths) for (const w of workloads) {
    results.set(`${p} ${w}`, { path: p, workload: w, value: null, unit: WORKLOAD_UNIT[w], runs: [], notes: [] });
  }
  const note = (p: PathName, w: Workload, n: string) => {
    const r = results.get(`${p} ${w}`)!;
    if (!r.notes.includes(n)) r.notes.push(n);
  };

  log(`lab: client, director, 2 real servers (${server}), offloads ${offload ? 'on' : 'off'}`);
  const topo = await buildLab({
    servers: 2, director: 'none', direct: true, directReturn: true, httpServer: server, udpPort: 0, offload, log,
  });
  const iperfs: LabProcess[] = [];
  try {
    // Two iperf3 servers per real server: one bound to its own address (NAT, DNAT,
    // HAProxy, direct) and one bound to the VIP on lo (DR, TUN). A UDP server bound
    // to 0.0.0.0 would answer DR/TUN clients from its own address, which the
    // client's socket (connected to the VIP) ignores — the classic DR/UDP trap.
    for (const [i, rs] of topo.rsNames.entries()) {
      for (const bind of [topo.rsAddrs[i]!, topo.vip]) {
        const p = topo.lab.spawn(rs, 'iperf3', ['-s', '-B', bind, '-p', String(IPERF_PORT), '--rcv-timeout', '5000', '--forceflush']);
        iperfs.push(p);
        await p.waitFor(/Server listening/, 10_000);
      }
    }
    const ctx = { topo, daemonArgs, drReplies };
    let outOfTime = false;
    for (let round = 0; round < runs && !outOfTime; round++) {
      for (const name of paths) {
        const path = table[name];
        const why = path.unavailable();
        if (why) {
          for (const w of workloads) note(name, w, why);
          continue;
        }
        if (Date.now() - t0 > budgetMs) {
          outOfTime = true;
          break;
        }
        log(`round ${round + 1}/${runs}: ${name}`);
        try {
          await path.setup(ctx);
          const target = path.target(topo);
          await checkPath(topo, target.host, target.httpPort);
          for (const w of workloads) {
            const unsupported = path.unsupported(w);
            if (unsupported) {
              note(name, w, unsupported);
              continue;
            }
            if (Date.now() - t0 > budgetMs) {
              outOfTime = true;
              break;
            }
            const r = await runWorkload(topo, path, w, seconds, connections);
            const row = results.get(`${name} ${w}`)!;
            row.runs.push(r.value);
            if (r.note) note(name, w, r.note);
            log(`  ${w}: ${r.value === null ? 'failed' : `${fmt(r.value)} ${WORKLOAD_UNIT[w]}`}${r.note ? ` (${r.note})` : ''}`);
            // Let TIME_WAIT sockets, conntrack entries and iperf3's server settle between runs.
            await sleep(500);
          }
        } catch (e) {
          for (const w of workloads) note(name, w, `path failed: ${(e as Error).message.split('\n')[0]}`);
          // One entry per round: the workloads this round did not reach count as failed runs.
          for (const w of workloads) {
            const row = results.get(`${name} ${w}`)!;
            if (!path.unsupported(w) && row.runs.length === round) row.runs.push(null);
          }
          log(`  ${name} failed: ${(e as Error).message.split('\n')[0]}`);
        } finally {
          await path.teardown(ctx).catch(() => undefined);
        }
      }
    }
    if (outOfTime) log(`time budget reached after ${Math.round((Date.now() - t0) / 1000)} s: remaining runs skipped`);
  } finally {
    await Promise.all(iperfs.map((p) => p.stop()));
    await topo.teardown();
  }

  const rows = [...results.values()];
  for (const r of rows) {
    const ok = r.runs.filter((v): v is number => v !== null);
    r.value = median(ok);
    if (r.runs.length > 0 && ok.length < r.runs.length) r.notes.push(`${r.runs.length - ok.length} of ${r.runs.length} runs failed`);
  }
  return {
    results: rows,
    ratios: computeRatios(rows, paths, workloads),
    pairedRatios: computePairedRatios(rows, paths, workloads),
    settings: {
      runs, seconds,
      offload: offload
        ? 'veth defaults: tx checksum, TSO and GSO on'
        : 'tx checksum, TSO and GSO off on every lab endpoint (client, director, real servers)',
      realServers: server === 'nginx' ? 'nginx (Debian package), 1 worker, 2 servers' : "Node's http server, 2 servers",
      wrk: `wrk -t1 -c${connections} -d${seconds}s`,
      daemonArgs, paths, workloads,
      drReplies: drReplies === 'direct'
        ? "real servers -> client over the client's link on the server LAN, not through the director"
        : "real servers -> their default route, through the director's kernel",
    },
    machine: {
      cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', kernel: release(), node: process.version,
      loadavgStart, loadavgEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    elapsedSeconds: Math.round((Date.now() - t0) / 1000),
  };
}

export function fmt(v: number | null): string {
  if (v === null) return '-';
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** The report as an operator reads it: one row per workload, one column per path, then the ratios. */
export function renderReport(rep: WireReport): string {
  const paths = rep.settings.paths;
  const workloads = rep.settings.workloads;
  const value = (p: PathName, w: Workload) => rep.results.find((r) => r.path === p && r.workload === w)?.value ?? null;
  const head = ['workload', ...paths, 'unit'];
  const body = workloads.map((w) => [w, ...paths.map((p) => fmt(value(p, w))), WORKLOAD_UNIT[w]]);
  const ratioRows = (ratios: WireReport['ratios']) => Object.entries(ratios).map(([k, row]) => [k, ...workloads.map((w) => {
    const v = row[w];
    return v === null || v === undefined ? '-' : `${v.toFixed(2)}x`;
  })]);
  const lines: string[] = [];
  lines.push(`ulvs bench wire: medians of ${rep.settings.runs} runs of ${rep.settings.seconds} s; ${rep.settings.wrk}`);
  lines.push(`real servers: ${rep.settings.realServers}; offloads: ${rep.settings.offload}`);
  lines.push(`machine: ${rep.machine.cpus} CPU ${rep.machine.cpuModel}, Linux ${rep.machine.kernel}, Node ${rep.machine.node}, ` +
    `load ${rep.machine.loadavgStart[0]} → ${rep.machine.loadavgEnd[0]}; ${rep.elapsedSeconds} s`);
  if (rep.settings.daemonArgs.length) lines.push(`ulvs daemon ${rep.settings.daemonArgs.join(' ')}`);
  if (rep.settings.drReplies && rep.settings.paths.some((p) => p === 'ulvs-dr' || p.startsWith('ulvs-tun'))) {
    lines.push(`DR/TUN replies: ${rep.settings.drReplies}`);
  }
  lines.push('');
  lines.push(...columns([head, ...body]));
  for (const [title, ratios] of [['ratio (of medians)', rep.ratios], ['ratio (median per round)', rep.pairedRatios]] as const) {
    const rows = ratioRows(ratios);
    if (rows.length === 0) continue;
    lines.push('');
    lines.push(...columns([[title, ...workloads], ...rows]));
  }
  const notes = rep.results.filter((r) => r.notes.length);
  if (notes.length) {
    lines.push('');
    for (const r of notes) lines.push(`${r.path} ${r.workload}: ${r.notes.join('; ')}`);
  }
  return lines.join('\n') + '\n';
}

function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd());
}
