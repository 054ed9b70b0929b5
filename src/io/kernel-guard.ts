/**
 * Living beside the kernel (DESIGN.md): the director reads frames with AF_PACKET,
 * which sees them before netfilter, and sends with AF_PACKET too. The kernel must
 * not also handle what ulvs handles — it would RST connections to a local VIP, or
 * (ip_forward=1) route the real servers' un-rewritten NAT replies to the clients.
 * So the daemon owns one nftables table, `inet ulvs_<pid>`, that drops exactly
 * that traffic in prerouting (raw priority, before conntrack): packets to each
 * virtual service's address:port (and to fwmark services' classifier matches),
 * and packets from each NAT real server's address:port that are not addressed to
 * this host (so the director's own connections to real servers, e.g. health
 * checks, still work). AF_PACKET taps run before prerouting, so dropping there
 * hides frames from the kernel without hiding them from ulvs.
 *
 * The table is replaced atomically (one `nft -f` transaction) whenever the
 * services change, and deleted on stop, on process exit (also after an uncaught
 * exception) and on SIGTERM/SIGINT/SIGHUP if nobody else handles them; tables left
 * by a ulvs process that died (SIGKILL) are swept at the next start.
 *
 * Also here: the offload check (ethtool -k) that warns when an interface can hand
 * AF_PACKET frames larger than the MTU.
 */
import { execFile, spawnSync } from 'node:child_process';
import type { HideSpec } from './worker-protocol.js';

const PROTO_NAMES: Record<number, string> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };
const L4_PROTOS = [6, 17, 132];

/** argv for `cmd args…`, inside network namespace `netns` when given (`ip netns exec`). */
function inNetns(netns: string | undefined, cmd: string, args: string[]): [string, string[]] {
  return netns === undefined ? [cmd, args] : ['ip', ['netns', 'exec', netns, cmd, ...args]];
}

function nftSync(args: string[], input?: string, netns?: string): { ok: boolean; out: string } {
  const [cmd, argv] = inNetns(netns, 'nft', args);
  const r = spawnSync(cmd, argv, { input, encoding: 'utf8', timeout: 10_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

function nftAsync(text: string, netns?: string): Promise<{ ok: boolean; out: string }> {
  const [cmd, argv] = inNetns(netns, 'nft', ['-f', '-']);
  return new Promise((resolve) => {
    const child = execFile(cmd, argv, { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ ok: err === null, out: `${stdout}${stderr}${err && !stderr ? err.message : ''}` });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(text);
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes `inet ulvs_<pid>` tables of processes that no longer exist (this namespace only). */
export function sweepStaleTables(netns?: string): string[] {
  const r = nftSync(['list', 'tables', 'inet'], undefined, netns);
  if (!r.ok) return [];
  const gone: string[] = [];
  for (const line of r.out.split('\n')) {
    const m = /^table inet (ulvs_(\d+))\s*$/.exec(line.trim());
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || pidAlive(pid)) continue;
    if (nftSync(['delete', 'table', 'inet', m[1]!], undefined, netns).ok) gone.push(m[1]!);
  }
  return gone;
}

function portMatch(kw: 'dport' | 'sport', lo: number, hi: number): string {
  if (lo === 0 && hi === 65535) return '';
  return lo === hi ? ` th ${kw} ${lo}` : ` th ${kw} ${lo}-${hi}`;
}

function protoMatch(proto: number): string {
  return ` meta l4proto ${PROTO_NAMES[proto] ?? proto}`;
}

/** The nftables rules (one per line) that hide `spec` from the local stack. */
export function hideRules(spec: HideSpec): string[] {
  const rules: string[] = [];
  for (const v of spec.vips) {
    const ip = v.af === 4 ? 'ip' : 'ip6';
    rules.push(`${ip} daddr ${v.addr}${protoMatch(v.proto)}${v.port === 0 ? '' : portMatch('dport', v.port, v.port)} drop`);
  }
  for (const m of spec.marks) {
    const ip = m.af === 4 ? 'ip' : 'ip6';
    const full = m.af === 4 ? 32 : 128;
    const net = m.prefix === full ? m.addr : `${m.addr}/${m.prefix}`;
    const protos = m.proto === 0 ? L4_PROTOS : [m.proto];
    for (const p of protos) rules.push(`${ip} daddr ${net}${protoMatch(p)}${portMatch('dport', m.portLo, m.portHi)} drop`);
  }
  for (const r of spec.reals) {
    const ip = r.af === 4 ? 'ip' : 'ip6';
    const protos = r.proto === 0 ? L4_PROTOS : [r.proto];
    for (const p of protos) {
      // Only replies passing through: the director's own connections to the server are left alone.
      rules.push(`${ip} saddr ${r.addr}${protoMatch(p)}${r.port === 0 ? '' : portMatch('sport', r.port, r.port)} fib daddr type != local drop`);
    }
  }
  return [...new Set(rules)];
}

export class KernelGuard {
  readonly table: string;
  private installed = false;
  private chain: Promise<unknown> = Promise.resolve();
  private lastText = '';
  private readonly exitHook = (): void => this.removeSync();
  private readonly signalHook = (sig: NodeJS.Signals): void => {
    const others = process.listenerCount(sig) - 1;
    this.removeSync();
    const code = 128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1);
    // Nobody else handles it: behave like the default action.
    if (others <= 0) process.exit(code);
    // Someone else does (the daemon's clean stop); if the process is still here after a
    // grace period (a handler that only watches, e.g. a test runner's), end it as the signal would.
    setTimeout(() => process.exit(code), 2000).unref();
  };

  private constructor(name: string, private readonly netns: string | undefined) {
    this.table = name;
  }

  /**
   * Sweeps stale tables and installs an empty `inet ulvs_<pid>` table (in `netns`, a
   * name for `ip netns exec`, when given); throws when nft fails.
   */
  static install(name = `ulvs_${process.pid}`, netns?: string): KernelGuard {
    sweepStaleTables(netns);
    const g = new KernelGuard(name, netns);
    const r = nftSync(['-f', '-'], g.rulesetText({ vips: [], marks: [], reals: [] }), netns);
    if (!r.ok) throw new Error(`nft: ${r.out.trim() || 'failed'}`);
    g.installed = true;
    process.on('exit', g.exitHook);
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, g.signalHook);
    return g;
  }

  private rulesetText(spec: HideSpec): string {
    const rules = hideRules(spec).map((r) => `    ${r}\n`).join('');
    // add + delete + define in one transaction: the table is replaced atomically.
    return `add table inet ${this.table}\ndelete table inet ${this.table}\n` +
      `table inet ${this.table} {\n  chain prerouting {\n    type filter hook prerouting priority raw; policy accept;\n${rules}  }\n}\n`;
  }

  /** Replaces the rules (serialized; resolves once nft has applied them). */
  update(spec: HideSpec): Promise<void> {
    const text = this.rulesetText(spec);
    const next = this.chain.then(async () => {
      if (!this.installed || text === this.lastText) return;
      const r = await nftAsync(text, this.netns);
      if (!r.ok) throw new Error(`nft: ${r.out.trim()}`);
      this.lastText = text;
    });
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** The rules as nft lists them (diagnostics, tests). */
  list(): string {
    return nftSync(['list', 'table', 'inet', this.table], undefined, this.netns).out;
  }

  /** Deletes the table (idempotent). */
  async remove(): Promise<void> {
    await this.chain;
    this.removeSync();
  }

  removeSync(): void {
    if (!this.installed) return;
    this.installed = false;
    nftSync(['delete', 'table', 'inet', this.table], undefined, this.netns);
    process.off('exit', this.exitHook);
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.off(s, this.signalHook);
  }
}

// ----------------------------------------------------------------------------- offloads

/** Offloads that let AF_PACKET see frames larger than the MTU on a served interface. */
const SUPER_FRAME_FEATURES: Array<[string, string]> = [
  ['generic-receive-offload', 'gro'],
  ['large-receive-offload', 'lro'],
  ['rx-gro-hw', 'rx-gro-hw'],
  ['tcp-segmentation-offload', 'tso'],
];

/** Features (ethtool -K names) that are on and changeable, per interface; unknown when ethtool is missing. */
export function superFrameOffloads(ifname: string, netns?: string): string[] | null {
  const [cmd, argv] = inNetns(netns, 'ethtool', ['-k', ifname]);
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0 || typeof r.stdout !== 'string') return null;
  const on: string[] = [];
  for (const [long, short] of SUPER_FRAME_FEATURES) {
    const m = new RegExp(`^${long}: (on|off)( \\[fixed\\])?`, 'm').exec(r.stdout);
    if (m && m[1] === 'on' && m[2] === undefined) on.push(short);
  }
  return on;
}

/**
 * One warning line when any served interface has GRO/LRO/TSO on (with the exact
 * command that turns them off), or null. Such frames are dropped and counted.
 */
export function offloadWarning(ifnames: string[], netns?: string): string | null {
  const cmds: string[] = [];
  const what: string[] = [];
  for (const n of ifnames) {
    const on = superFrameOffloads(n, netns);
    if (on === null || on.length === 0) continue;
    what.push(`${n}: ${on.join(' ')}`);
    cmds.push(`ethtool -K ${n} ${on.map((f) => `${f} off`).join(' ')}`);
  }
  if (cmds.length === 0) return null;
  return `ulvs: warning: offloads on (${what.join('; ')}) can hand ulvs frames larger than the MTU, which it drops ` +
    `(counted as super-frames); run: ${cmds.join(' && ')}`;
}
