/**
 * Both benchmarks keep working (CI runs this; it measures nothing): the
 * native-free hot-path bench and `ulvs bench wire` each run their smoke mode as
 * an operator would start them, and every case/path produces a number.
 * Performance itself is judged from full benchmark runs, never here.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SCHEDULER_NAMES } from '../../src/sched/registry.js';
import { PATHS } from '../../src/lab/bench/paths.js';
import { WORKLOADS } from '../../src/lab/bench/workloads.js';
import type { WireReport } from '../../src/lab/bench/wire-bench.js';
import { LAB_SKIP } from '../lab/helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function runNode(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  return new Promise((resolve) => {
    // The test runner's preloads must not follow the benchmark (or its lab's daemons).
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, pid: child.pid ?? -1 });
    });
  });
}

t.test('native-free bench --smoke: every case reports a rate', async (t) => {
  const r = await runNode(['--expose-gc', 'dist/native-free-bench/run.js', '--smoke', '--json'], 180_000);
  t.equal(r.code, 0, r.stderr.slice(-500));
  const rep = JSON.parse(r.stdout) as { results: Array<{ case: string; ns_per_packet: number }>; bytes_per_conn: number };
  const cases = new Set(rep.results.map((x) => x.case));
  for (const c of ['nat-in-established', 'nat-out-established', 'dr-established', 'tun-established']) t.ok(cases.has(c), c);
  for (const s of SCHEDULER_NAMES) t.ok(cases.has(`new-conn-${s}`), `new-conn-${s}`);
  for (const x of rep.results) t.ok(x.ns_per_packet > 0, `${x.case}: ${x.ns_per_packet} ns/packet`);
  t.ok(rep.bytes_per_conn > 0 && rep.bytes_per_conn < 512, `${rep.bytes_per_conn} bytes per connection`);
});

t.test('ulvs bench wire --smoke: every path carries every workload it can, and the lab is gone after', LAB_SKIP, async (t) => {
  const r = await runNode(['bin/ulvs.js', 'bench', 'wire', '--smoke', '--json'], 300_000);
  t.equal(r.code, 0, r.stderr.slice(-2000));
  const rep = JSON.parse(r.stdout) as WireReport;
  t.equal(rep.results.length, PATHS.length * WORKLOADS.length, 'one result per path and workload');
  for (const x of rep.results) {
    if (x.path === 'haproxy' && x.workload === 'udp-64') {
      t.equal(x.value, null, 'HAProxy has no UDP');
      t.same(x.notes, ['HAProxy does not proxy UDP']);
      continue;
    }
    t.ok(x.value !== null && x.value > 0, `${x.path} ${x.workload}: ${x.value} ${x.unit} ${x.notes.join('; ')}`);
  }
  const nat = rep.ratios['ulvs-nat/kernel-dnat'];
  t.ok(nat, 'ulvs-nat/kernel-dnat ratios');
  t.same(Object.keys(nat ?? {}).sort(), [...WORKLOADS].sort());
  for (const w of WORKLOADS) t.type(nat?.[w], 'number', `ratio for ${w}`);
  const paired = rep.pairedRatios['ulvs-nat/kernel-dnat'];
  for (const w of WORKLOADS) t.equal(paired?.[w], nat?.[w], `one round: the per-round ratio for ${w} is the ratio of medians`);
  t.match(rep.settings.offload, /on/);
  t.ok(rep.settings.daemonArgs.includes('--vnet-hdr'), 'offloads on: the daemon keeps super-frames whole');
  const left = readdirSync('/var/run/netns').filter((n) => n.startsWith(`ulvs-${r.pid}-`));
  t.same(left, [], 'no namespace of the bench is left');
});
