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
 * The table follows the services one change at a time (HideRuleset below): each
 * change is one nftables transaction, atomic, run in-process through libnftables
 * when it can be (nft-lib.ts), else by the nft program. It is deleted on stop, on process exit (also after an uncaught
 * exception) and on SIGTERM/SIGINT/SIGHUP if nobody else handles them; tables left
 * by a ulvs process that died (SIGKILL) are swept at the next start.
 *
 * Also here: the offload check (ethtool -k) that warns when an interface can hand
 * AF_PACKET frames larger than the MTU.
 */
import { execFile, spawnSync } from 'node:child_process';
import type { HideChange, HideSpec } from './worker-protocol.js';
import { NftContext } from './nft-lib.js';

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

/** Up to this many rules the table is one chain (the simplest layout, rewritten whole on every change). */
const SINGLE_CHAIN_MAX = 256;
/** Rules per part chain right after the rules are spread over parts, and at most on average before they are spread again. */
const PART_RULES = 32;
const PART_RULES_MAX = 128;
/** Part chains: at least (a power of two), at most (every packet the kernel sees jumps through each). */
const PARTS_MIN = 16;
const PARTS_MAX = 256;

/** FNV-1a over the rule's text: which part chain a rule lives in. */
function ruleHash(rule: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < rule.length; i++) h = Math.imul(h ^ rule.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function partsFor(rules: number): number {
  let p = PARTS_MIN;
  while (p < PARTS_MAX && p * PART_RULES < rules) p *= 2;
  return p;
}

/**
 * The guard's rules and the nft script that brings the kernel's table up to date
 * with them, kept per HideChange.
 *
 * Why not rewrite the table on every change: nft parses and the kernel replaces
 * every rule each time, about 40 µs per rule — 0.4 s per `ipvsadm -a` with 5,000
 * services, half an hour for `ipvsadm -R` of them. Adding or deleting single rules
 * does not help: nft then loads every rule of the table first (to find handles,
 * or to echo them). So a big rule set is spread over part chains by a hash of the
 * rule's text (the base chain jumps to each); a change appends the rules it adds to
 * their parts and rewrites (`flush chain` + its rules) only the parts it deleted
 * from, all in one transaction. Up to SINGLE_CHAIN_MAX
 * rules the table is the one chain it always was; the layout changes (one full
 * replacement) only when the rule count has grown or shrunk a lot, so that cost is
 * amortised over many changes.
 */
export class HideRuleset {
  /** Rule text → how many hidden entries produce it (the same rule can come from several). */
  private readonly owners = new Map<string, number>();
  /** The rules of the last fwmark list (it is replaced whole). */
  private markRules: string[] = [];
  /** 1 = one chain; else the number of part chains. */
  private parts = 1;
  private members: Set<string>[] = [];
  /**
   * Part chains changed since the last script: the rules added to each (appended, the
   * cheap case: a restore only adds), or null when one was deleted (the part is rewritten).
   */
  private readonly dirty = new Map<number, string[] | null>();
  /** The next script replaces the whole table (first install, layout change, after a failure). */
  private full = true;
  /** One-chain layout: something changed since the last script. */
  private changed = false;

  constructor(readonly table: string) {}

  get size(): number {
    return this.owners.size;
  }

  /** The part chains (1 = the classic one-chain table). */
  get layout(): number {
    return this.parts;
  }

  apply(c: HideChange): void {
    for (const v of c.del.vips) for (const r of hideRules({ vips: [v], marks: [], reals: [] })) this.release(r);
    for (const x of c.del.reals) for (const r of hideRules({ vips: [], marks: [], reals: [x] })) this.release(r);
    if (c.marks !== undefined) {
      const next = hideRules({ vips: [], marks: c.marks, reals: [] });
      for (const r of this.markRules) this.release(r);
      for (const r of next) this.hold(r);
      this.markRules = next;
    }
    for (const v of c.add.vips) for (const r of hideRules({ vips: [v], marks: [], reals: [] })) this.hold(r);
    for (const x of c.add.reals) for (const r of hideRules({ vips: [], marks: [], reals: [x] })) this.hold(r);
  }

  /** Every rule, in the order nft would list them (tests). */
  rules(): string[] {
    if (this.parts === 1) return [...this.owners.keys()];
    return this.members.flatMap((m) => [...m]);
  }

  /**
   * The nft script for everything applied since the last call, or null when nothing
   * changed. Call failed() when nft refuses it: the next script then replaces the table.
   */
  nextScript(): string | null {
    const n = this.owners.size;
    let parts = this.parts;
    if (parts === 1 ? n > SINGLE_CHAIN_MAX : n > parts * PART_RULES_MAX && parts < PARTS_MAX) parts = partsFor(n);
    else if (parts > 1 && n <= SINGLE_CHAIN_MAX / 2) parts = 1;
    if (parts !== this.parts) {
      this.parts = parts;
      this.full = true;
    }
    let text: string | null = null;
    if (this.full || (parts === 1 && this.changed)) {
      text = this.fullText();
    } else if (this.dirty.size > 0) {
      const out: string[] = [];
      for (const k of [...this.dirty.keys()].sort((a, b) => a - b)) {
        const added = this.dirty.get(k)!;
        if (added === null) out.push(`flush chain inet ${this.table} h${k}\n`);
        const rules = (added ?? [...this.members[k]!]).map((r) => `    ${r}\n`).join('');
        if (rules !== '') out.push(`table inet ${this.table} {\n  chain h${k} {\n${rules}  }\n}\n`);
      }
      text = out.join('');
    }
    this.full = false;
    this.changed = false;
    this.dirty.clear();
    return text;
  }

  failed(): void {
    this.full = true;
  }

  private fullText(): string {
    const head = `add table inet ${this.table}\ndelete table inet ${this.table}\n` +
      `table inet ${this.table} {\n  chain prerouting {\n    type filter hook prerouting priority raw; policy accept;\n`;
    if (this.parts === 1) {
      this.members = [];
      const rules = [...this.owners.keys()].map((r) => `    ${r}\n`).join('');
      // add + delete + define in one transaction: the table is replaced atomically.
      return `${head}${rules}  }\n}\n`;
    }
    const members: Set<string>[] = Array.from({ length: this.parts }, () => new Set<string>());
    for (const r of this.owners.keys()) members[ruleHash(r) & (this.parts - 1)]!.add(r);
    this.members = members;
    const jumps = members.map((_, k) => `    jump h${k}\n`).join('');
    const chains = members.map((m, k) => `  chain h${k} {\n${[...m].map((r) => `    ${r}\n`).join('')}  }\n`).join('');
    return `${head}${jumps}  }\n${chains}}\n`;
  }

  private hold(rule: string): void {
    const n = this.owners.get(rule) ?? 0;
    this.owners.set(rule, n + 1);
    if (n === 0) this.touch(rule, true);
  }

  private release(rule: string): void {
    const n = this.owners.get(rule);
    if (n === undefined) return;
    if (n > 1) {
      this.owners.set(rule, n - 1);
      return;
    }
    this.owners.delete(rule);
    this.touch(rule, false);
  }

  private touch(rule: string, present: boolean): void {
    if (this.parts === 1) {
      this.changed = true;
      return;
    }
    const k = ruleHash(rule) & (this.parts - 1);
    if (present) {
      this.members[k]!.add(rule); // a Set keeps insertion order: appended last, like the chain
      const added = this.dirty.get(k);
      if (added === undefined) this.dirty.set(k, [rule]);
      else added?.push(rule);
    } else {
      this.members[k]!.delete(rule);
      this.dirty.set(k, null);
    }
  }
}

export class KernelGuard {
  readonly table: string;
  private installed = false;
  private chain: Promise<unknown> = Promise.resolve();
  /** The nft run not started yet: changes applied meanwhile are written by it too. */
  private pending: Promise<void> | null = null;
  /** Changes are recorded but not written until resume() (see defer()). */
  private deferred = false;
  /** In-process nftables (nft-lib.ts) for this process's namespace; null = run the nft program. */
  private nft: NftContext | null = null;
  private readonly rules: HideRuleset;
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

  private constructor(name: string, private readonly netns: string | undefined, inProcess: boolean) {
    this.table = name;
    this.rules = new HideRuleset(name);
    if (netns === undefined && inProcess) this.nft = NftContext.open();
  }

  /** One transaction, in-process when possible. */
  private runScript(text: string): Promise<{ ok: boolean; out: string }> {
    return this.nft !== null ? Promise.resolve(this.nft.run(text)) : nftAsync(text, this.netns);
  }

  /**
   * Sweeps stale tables and installs an empty `inet ulvs_<pid>` table (in `netns`, a
   * name for `ip netns exec`, when given); throws when nft fails. `inProcess: false`
   * runs the nft program for every change even when libnftables could be used.
   */
  static install(name = `ulvs_${process.pid}`, netns?: string, opts: { inProcess?: boolean } = {}): KernelGuard {
    sweepStaleTables(netns);
    const g = new KernelGuard(name, netns, opts.inProcess ?? true);
    const r = nftSync(['-f', '-'], g.rules.nextScript()!, netns);
    if (!r.ok) throw new Error(`nft: ${r.out.trim() || 'failed'}`);
    g.installed = true;
    process.on('exit', g.exitHook);
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(s, g.signalHook);
    return g;
  }

  /**
   * Applies one change reported by the data plane; resolves once nft has applied it
   * (at once while deferred). Runs are serialized, and changes that arrive while one
   * runs share the next.
   */
  apply(change: HideChange): Promise<void> {
    this.rules.apply(change);
    return this.deferred ? Promise.resolve() : this.sync();
  }

  /**
   * Records changes without writing them until resume(). For the time before packet
   * I/O starts: ulvs forwards nothing then, so nothing needs hiding yet, and a
   * restore file of thousands of services costs one nft run instead of one each.
   */
  defer(): void {
    this.deferred = true;
  }

  /** Writes what was deferred (one nft run) and applies later changes as they come. */
  resume(): Promise<void> {
    this.deferred = false;
    return this.sync();
  }

  private sync(): Promise<void> {
    if (this.pending !== null) return this.pending;
    const run = this.chain.then(async () => {
      this.pending = null;
      if (!this.installed) return;
      const text = this.rules.nextScript();
      if (text === null) return;
      let r = await this.runScript(text);
      if (!r.ok) {
        // Our table was changed or removed behind our back: write it whole once more.
        this.rules.failed();
        r = await this.runScript(this.rules.nextScript()!);
      }
      if (!r.ok) {
        this.rules.failed();
        throw new Error(`nft: ${r.out.trim()}`);
      }
    });
    this.pending = run;
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Whether changes are written through libnftables in this process (else by the nft program). */
  get inProcess(): boolean {
    return this.nft !== null;
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
    this.nft?.close();
    this.nft = null;
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
    `(counted as super-frames); run: ${cmds.join(' && ')}, or start the daemon with --vnet-hdr to forward them whole`;
}
