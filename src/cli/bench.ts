/**
 * `ulvs bench wire`: ulvs against the kernel's DNAT, HAProxy and the direct path
 * in one namespace lab (lab/bench/wire-bench.ts). The hot-path micro-benchmarks
 * are `npm run bench` (native-free-bench/), which need no root and no lab.
 */
import { parseArgs } from 'node:util';
import { PATHS, type PathName } from '../lab/bench/paths.js';
import { WORKLOADS, type Workload } from '../lab/bench/workloads.js';
import { renderReport, runWireBench, type WireBenchOptions } from '../lab/bench/wire-bench.js';

const USAGE = `Usage: ulvs bench wire [options]

Builds a lab (client, director, two real servers), drives each workload through
each path, prints medians and the ratios of the ulvs paths to the baselines (of the
medians, and the median of the per-round ratios, which cancels slow drift), and
removes the lab. Needs root. The default run takes 6-9 minutes.

Paths:     ${PATHS.join(', ')}
Workloads: ${WORKLOADS.join(', ')}

Options:
  --json               print the report as JSON (results, ratios, pairedRatios, settings, machine)
  --runs N             runs per path and workload; medians are reported (default 3)
  --seconds S          seconds per run (default 4)
  --paths A,B,...      only these paths (default all)
  --workloads A,B,...  only these workloads (default all)
  --offload on|off     veth tx checksum/TSO/GSO offload on the lab's endpoints (default on;
                       the ulvs paths then run \`ulvs daemon --vnet-hdr\`)
  --server nginx|node  the real servers' HTTP server (default nginx when installed)
  --connections N      wrk connections (default 32)
  --daemon-arg ARG     pass ARG to \`ulvs daemon\` on the ulvs paths (repeatable)
  --dr-replies direct|director
                       how DR and TUN replies reach the client: straight from the real
                       servers over the client's link on their LAN, as through a router
                       (default), or through the director's kernel (their default route)
  --smoke              1 run of 1 s per path and workload: proves the bench works, measures nothing
  -h, --help           this text

Hot-path (no lab) benchmarks: npm run bench -- --help
`;

function fail(msg: string): number {
  process.stderr.write(`ulvs bench: ${msg}\n${USAGE}`);
  return 2;
}

function intArg(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`--${name} must be an integer from ${min} to ${max}`);
  return Number(v);
}

function listArg<T extends string>(v: string | undefined, name: string, allowed: readonly T[]): T[] | undefined {
  if (v === undefined) return undefined;
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const it of items) if (!(allowed as readonly string[]).includes(it)) throw new Error(`--${name}: unknown '${it}' (one of ${allowed.join(', ')})`);
  if (items.length === 0) throw new Error(`--${name} is empty`);
  return items as T[];
}

export default async function benchMain(args: string[]): Promise<number> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args, strict: true, allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        runs: { type: 'string' },
        seconds: { type: 'string' },
        paths: { type: 'string' },
        workloads: { type: 'string' },
        offload: { type: 'string' },
        server: { type: 'string' },
        connections: { type: 'string' },
        'daemon-arg': { type: 'string', multiple: true },
        'dr-replies': { type: 'string' },
        smoke: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    return fail((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals[0] !== 'wire' || positionals.length !== 1) {
    return fail(positionals.length === 0 ? 'missing benchmark name' : `unknown benchmark '${positionals.join(' ')}'`);
  }
  let opts: WireBenchOptions;
  try {
    if (values.offload !== undefined && values.offload !== 'on' && values.offload !== 'off') throw new Error('--offload must be on or off');
    if (values.server !== undefined && values.server !== 'nginx' && values.server !== 'node') throw new Error('--server must be nginx or node');
    const dr = values['dr-replies'];
    if (dr !== undefined && dr !== 'direct' && dr !== 'director') throw new Error('--dr-replies must be direct or director');
    opts = {
      runs: intArg(values.runs, 'runs', 1, 15) ?? (values.smoke ? 1 : undefined),
      seconds: intArg(values.seconds, 'seconds', 1, 60) ?? (values.smoke ? 1 : undefined),
      paths: listArg<PathName>(values.paths, 'paths', PATHS),
      workloads: listArg<Workload>(values.workloads, 'workloads', WORKLOADS),
      offload: values.offload !== 'off',
      server: (values.server as 'nginx' | 'node' | undefined) ?? 'auto',
      connections: intArg(values.connections, 'connections', 1, 4000),
      daemonArgs: values['daemon-arg'] ?? [],
      drReplies: dr,
      log: (line) => process.stderr.write(`${line}\n`),
    };
  } catch (e) {
    return fail((e as Error).message);
  }
  try {
    const report = await runWireBench(opts);
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
    return 0;
  } catch (e) {
    process.stderr.write(`ulvs bench wire: ${(e as Error).message}\n`);
    return 1;
  }
}
