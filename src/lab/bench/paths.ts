/**
 * The wire benchmark's paths: ways for the client's traffic to reach the real
 * servers, all set up inside one lab (lab-topology.ts, director 'none': the
 * director namespace is a plain router until a path makes it something else).
 * Each path installs itself, is checked with one real HTTP request, is measured,
 * and removes itself again, so the next path finds the same clean router:
 *
 * - direct       client → rs1 over the bridge (c1), no director: the ceiling;
 * - kernel-dnat  the VIP on d0, nftables DNAT: round robin for HTTP and
 *                source-hash (jhash of the client address) for iperf3, whose
 *                control and data connections must reach the same server;
 * - haproxy      HAProxy `mode tcp` bound to the VIP: roundrobin / balance source;
 * - ulvs-nat, ulvs-dr, ulvs-tun   `ulvs daemon` on d0/d1 with the same services
 *                through our ipvsadm: rr for HTTP, sh for iperf3 TCP and UDP
 *                (the same destination list, so both land on the same server).
 * The daemon runs only for the ulvs paths: it reads every frame of d0/d1 and
 * would otherwise tax the kernel paths it is compared with.
 *
 * DR and TUN replies: by default (`drReplies: 'direct'`) the real servers send them straight to
 * the client over the client's link on the server LAN (c1), as a real server does through its
 * own router; only NAT needs the replies to come back through the director. With 'director'
 * they take the real servers' default route, through the director's kernel (which forwards them
 * while the daemon still reads and passes every one of them).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { LAB_ADDR, LAB_GUE_PORT, ULVS_BIN, type LabTopology } from '../lab-topology.js';
import type { LabProcess } from '../netns.js';
import { IPERF_PORT, type Workload, type WorkloadTarget } from './workloads.js';

export const PATHS = ['direct', 'kernel-dnat', 'haproxy', 'ulvs-nat', 'ulvs-dr', 'ulvs-tun', 'ulvs-tun-gue'] as const;
export type PathName = (typeof PATHS)[number];

export type DrReplies = 'direct' | 'director';

export interface PathContext {
  topo: LabTopology;
  /** Extra `ulvs daemon` arguments (after `--interface d0 --interface d1`). */
  daemonArgs: string[];
  /** How DR/TUN replies reach the client (see above). */
  drReplies: DrReplies;
}

/**
 * Routes the client's subnet on every real server via the client's own address on the server
 * LAN (on = true), or removes that route again.
 */
async function repliesDirect(topo: LabTopology, on: boolean): Promise<void> {
  if (on && !topo.clientDirect) throw new Error('DR/TUN replies direct: the bench lab has no client link on the server LAN');
  const subnet = `${LAB_ADDR.client.replace(/\.\d+$/, '.0')}/24`; // the client's /24
  for (let i = 0; i < topo.rsAddrs.length; i++) {
    const args = on ? ['route', 'replace', subnet, 'via', topo.clientDirect!] : ['route', 'del', subnet];
    await topo.exec(`rs${i + 1}`, 'ip', args, { allowFail: !on });
  }
}

export interface BenchPath {
  readonly name: PathName;
  /** Why this path cannot run on this machine (e.g. HAProxy not installed), or null. */
  unavailable(): string | null;
  /** Why this path cannot carry workload `w`, or null. */
  unsupported(w: Workload): string | null;
  target(topo: LabTopology): WorkloadTarget;
  setup(ctx: PathContext): Promise<void>;
  teardown(ctx: PathContext): Promise<void>;
}

const VIP = LAB_ADDR.vip;
const DNAT_TABLE = 'ulvs_bench_dnat';

function vipTarget(topo: LabTopology): WorkloadTarget {
  return { host: VIP, httpPort: topo.httpPort };
}

/** The VIP as a local address of the director (kernel-dnat, haproxy). */
async function addLocalVip(topo: LabTopology): Promise<void> {
  await topo.exec('director', 'ip', ['addr', 'replace', `${VIP}/32`, 'dev', 'd0']);
}

async function delLocalVip(topo: LabTopology): Promise<void> {
  await topo.exec('director', 'ip', ['addr', 'del', `${VIP}/32`, 'dev', 'd0'], { allowFail: true });
}

/**
 * nftables DNAT: numgen round robin for HTTP, jhash of the client address for iperf3. One
 * rule with a fixed seed for iperf3's TCP and UDP: two jhash expressions would each draw their
 * own random seed, and the UDP data would then reach the other server half the time (its port
 * unreachable ends the test).
 */
export function benchDnatRuleset(rsAddrs: readonly string[], httpPort: number): string {
  const map = rsAddrs.map((a, i) => `${i} : ${a}`).join(', ');
  const n = rsAddrs.length;
  return `table ip ${DNAT_TABLE} {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr ${VIP} tcp dport ${httpPort} dnat to numgen inc mod ${n} map { ${map} }
    ip daddr ${VIP} meta l4proto { tcp, udp } th dport ${IPERF_PORT} dnat to jhash ip saddr mod ${n} seed 0x1 map { ${map} }
  }
}
`;
}

/** HAProxy in TCP mode on the VIP, the userspace-proxy baseline. */
export function haproxyConfig(rsAddrs: readonly string[], httpPort: number): string {
  const servers = (port: number) => rsAddrs.map((a, i) => `  server rs${i + 1} ${a}:${port}\n`).join('');
  // maxconn: this box's fd limit refuses 100000 (io-prototype-measurements.md §5.10).
  return `global
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend http
  bind ${VIP}:${httpPort}
  default_backend web
backend web
  balance roundrobin
${servers(httpPort)}frontend iperf
  bind ${VIP}:${IPERF_PORT}
  default_backend iperf
backend iperf
  balance source
${servers(IPERF_PORT)}`;
}

/**
 * ipvsadm options of each ulvs path's real servers. ulvs-tun is IPIP, the kernel's default tunnel;
 * ulvs-tun-gue is GUE with remote checksum offload, the one tunnel whose super-frames the director
 * can leave to the kernel to segment (xmit/gue-gso.ts).
 */
export const ULVS_FORWARDING = {
  'ulvs-nat': '-m',
  'ulvs-dr': '-g',
  'ulvs-tun': '-i',
  'ulvs-tun-gue': `-i --tun-type gue --tun-port ${LAB_GUE_PORT} --tun-remcsum`,
} as const;
type UlvsPathName = keyof typeof ULVS_FORWARDING;

/** ipvsadm restore text for the ulvs paths; `flag` is the real servers' forwarding options (ULVS_FORWARDING). */
export function ulvsRules(rsAddrs: readonly string[], httpPort: number, flag: string): string {
  const lines = [`-A -t ${VIP}:${httpPort} -s rr`];
  for (const a of rsAddrs) lines.push(`-a -t ${VIP}:${httpPort} -r ${a}:${httpPort} ${flag} -w 1`);
  for (const proto of ['-t', '-u']) {
    lines.push(`-A ${proto} ${VIP}:${IPERF_PORT} -s sh`);
    for (const a of rsAddrs) lines.push(`-a ${proto} ${VIP}:${IPERF_PORT} -r ${a}:${IPERF_PORT} ${flag} -w 1`);
  }
  return lines.join('\n') + '\n';
}

function haproxyInstalled(): boolean {
  return spawnSync('haproxy', ['-v'], { timeout: 5000 }).status === 0;
}

const direct: BenchPath = {
  name: 'direct',
  unavailable: () => null,
  unsupported: () => null,
  target: (topo) => {
    if (!topo.clientDirect) throw new Error('the bench lab has no direct path');
    return { host: topo.rsAddrs[0]!, httpPort: topo.httpPort };
  },
  setup: async () => undefined,
  teardown: async () => undefined,
};

const kernelDnat: BenchPath = {
  name: 'kernel-dnat',
  unavailable: () => null,
  unsupported: () => null,
  target: vipTarget,
  setup: async ({ topo }) => {
    await addLocalVip(topo);
    await topo.exec('director', 'nft', ['-f', '-'], { input: benchDnatRuleset(topo.rsAddrs, topo.httpPort) });
    // Short-connection load leaves conntrack entries in TIME_WAIT; keep them brief.
    await topo.exec('director', 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_tcp_timeout_time_wait=5'], { allowFail: true });
  },
  teardown: async ({ topo }) => {
    await topo.exec('director', 'nft', ['delete', 'table', 'ip', DNAT_TABLE], { allowFail: true });
    await delLocalVip(topo);
  },
};

function haproxyPath(): BenchPath {
  let proc: LabProcess | null = null;
  let dir: string | null = null;
  return {
    name: 'haproxy',
    unavailable: () => (haproxyInstalled() ? null : 'HAProxy is not installed'),
    unsupported: (w) => (w === 'udp-64' ? 'HAProxy does not proxy UDP' : null),
    target: vipTarget,
    setup: async ({ topo }) => {
      await addLocalVip(topo);
      dir = mkdtempSync(join(tmpdir(), 'ulvs-bench-haproxy-'));
      const cfg = join(dir, 'haproxy.cfg');
      writeFileSync(cfg, haproxyConfig(topo.rsAddrs, topo.httpPort));
      // -db: foreground, no daemon; the lab kills it at teardown if we do not.
      proc = topo.lab.spawn('director', 'haproxy', ['-db', '-f', cfg]);
    },
    teardown: async ({ topo }) => {
      await proc?.stop();
      proc = null;
      if (dir) rmSync(dir, { recursive: true, force: true });
      dir = null;
      await delLocalVip(topo);
    },
  };
}

function ulvsPath(name: UlvsPathName): BenchPath {
  const flag = ULVS_FORWARDING[name];
  const tunnel = flag.startsWith('-i');
  let daemon: LabProcess | null = null;
  return {
    name,
    unavailable: () => null,
    unsupported: () => null,
    target: vipTarget,
    setup: async ({ topo, daemonArgs, drReplies }) => {
      if (tunnel) await topo.startTunDecap();
      if (flag !== '-m' && drReplies === 'direct') await repliesDirect(topo, true);
      const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
      delete env.ULVS_SOCKET;
      daemon = topo.lab.spawn('director', process.execPath,
        [ULVS_BIN, 'daemon', '--interface', 'd0', '--interface', 'd1', ...daemonArgs], env);
      await daemon.waitFor(/director ready/, 20_000);
      const r = await topo.ipvsadm(['-R'], { input: ulvsRules(topo.rsAddrs, topo.httpPort, flag) });
      if (r.code !== 0) throw new Error(`ipvsadm -R failed: ${r.stderr.trim()}`);
    },
    teardown: async ({ topo, drReplies }) => {
      await daemon?.stop(5000);
      daemon = null;
      if (flag !== '-m' && drReplies === 'direct') await repliesDirect(topo, false);
      if (tunnel) await topo.stopTunDecap();
    },
  };
}

/** A fresh set of path objects (they hold the processes they start). */
export function benchPaths(): Record<PathName, BenchPath> {
  return {
    direct,
    'kernel-dnat': kernelDnat,
    haproxy: haproxyPath(),
    'ulvs-nat': ulvsPath('ulvs-nat'),
    'ulvs-dr': ulvsPath('ulvs-dr'),
    'ulvs-tun': ulvsPath('ulvs-tun'),
    'ulvs-tun-gue': ulvsPath('ulvs-tun-gue'),
  };
}
