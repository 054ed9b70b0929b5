/**
 * Network-namespace labs: namespaces, veth pairs, bridges, addresses, routes,
 * sysctls and offload settings, commands run inside namespaces, and a teardown
 * that also runs when the process exits, is interrupted, or crashes.
 *
 * Every namespace of a lab is named `ulvs-<pid>-<random>-<short>`, so labs built
 * by parallel test files never collide, and a later lab can sweep away the
 * namespaces of a process that died without cleaning up (the pid is in the name).
 * Interfaces are created directly inside their namespaces (`ip link add … netns
 * X`), so their short names (eth0, d0, …) never meet in the root namespace.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';

export interface RunOptions {
  /** Kill the command after this long (default 10 s). */
  timeoutMs?: number;
  /** Resolve with the result instead of rejecting when the command fails. */
  allowFail?: boolean;
  /** Written to the command's stdin. */
  input?: string | Uint8Array;
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class CommandError extends Error {
  constructor(readonly argv: string[], readonly result: RunResult) {
    const why = result.timedOut ? 'timed out' : result.signal ? `killed by ${result.signal}` : `exit ${result.code}`;
    super(`${argv.join(' ')}: ${why}${result.stderr ? `: ${result.stderr.trim().slice(0, 500)}` : ''}`);
  }
}

/** Runs a command without a shell, with a timeout; rejects on failure unless allowFail. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const r: RunResult = { code, signal, stdout, stderr, timedOut };
      if ((code !== 0 || timedOut) && !opts.allowFail) reject(new CommandError([cmd, ...args], r));
      else resolve(r);
    });
    child.stdin.on('error', () => { /* the command may exit before reading its input */ });
    child.stdin.end(opts.input ?? '');
  });
}

export interface LabSupport {
  ok: boolean;
  reason: string;
}

/** Whether labs can run here: root, iproute2, and namespaces that can actually be created. */
export function labSupport(): LabSupport {
  if (process.platform !== 'linux') return { ok: false, reason: 'network namespaces need Linux' };
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return { ok: false, reason: 'lab tests need root (network namespaces, veth, AF_PACKET)' };
  }
  const probe = `ulvs-${process.pid}-probe${randomBytes(2).toString('hex')}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 });
  if (add.error) return { ok: false, reason: `iproute2 'ip' not usable: ${add.error.message}` };
  if (add.status !== 0) return { ok: false, reason: `cannot create a network namespace: ${add.stderr.trim()}` };
  spawnSync('ip', ['netns', 'del', probe], { timeout: 10_000 });
  return { ok: true, reason: '' };
}

let setprivOk: boolean | undefined;
/** `setpriv --pdeathsig KILL` makes a lab process die with us even on SIGKILL. */
function pdeathPrefix(): string[] {
  if (setprivOk === undefined) {
    const r = spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { timeout: 5000 });
    setprivOk = r.status === 0;
  }
  return setprivOk ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
}

export interface LabProcess {
  readonly ns: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written to stdout/stderr so far. */
  output(): string;
  /** Resolves with the first match of `re` in the output (checked on every chunk). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves when the process has exited (code, signal). */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export interface VethEnd {
  ns: string;
  ifname: string;
  /** Addresses in CIDR form ("10.0.0.1/24", "fd00::1/64"). */
  addrs?: string[];
  mac?: string;
  mtu?: number;
}

// Labs still standing; torn down synchronously if the process exits or is signalled.
const live = new Set<Lab>();
let handlersInstalled = false;

function onExit(): void {
  for (const lab of [...live]) lab.teardownSync();
}

function onSignal(sig: NodeJS.Signals): void {
  onExit();
  // Leave the default behaviour (exit) to other listeners if there are any; otherwise exit like the signal would.
  if (process.listenerCount(sig) <= 1) process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', onExit);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
}

function removeHandlers(): void {
  if (!handlersInstalled || live.size > 0) return;
  handlersInstalled = false;
  process.off('exit', onExit);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.off('SIGHUP', onSignal);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills (SIGKILL) every process running inside namespace `ns`. */
export function killNsProcesses(ns: string): void {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0) return;
  for (const tok of r.stdout.split(/\s+/)) {
    const pid = Number(tok);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
  }
}

function listNetns(): string[] {
  try {
    return readdirSync('/var/run/netns');
  } catch {
    return [];
  }
}

/**
 * Deletes lab namespaces (and kills their processes) left behind by ulvs processes
 * that no longer exist. Returns how many namespaces were removed.
 */
export function sweepStaleLabs(): number {
  let n = 0;
  for (const name of listNetns()) {
    const m = /^ulvs-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    killNsProcesses(name);
    if (spawnSync('ip', ['netns', 'del', name], { timeout: 10_000 }).status === 0) n++;
  }
  return n;
}

export class Lab {
  /** "ulvs-<pid>-<hex>-": the start of every namespace name of this lab. */
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly procs = new Set<LabProcess>();
  private readonly cleanups: Array<() => void> = [];
  private down = false;

  private constructor(readonly tag: string, prefix?: string) {
    this.prefix = prefix ?? `ulvs-${process.pid}-${randomBytes(3).toString('hex')}-`;
  }

  /**
   * A new empty lab (after sweeping namespaces of dead ulvs processes). `opts.prefix`
   * replaces the per-process prefix with a fixed one (`ulvs lab up`: names a user can
   * type, never swept as stale because they carry no pid).
   */
  static create(tag = 'lab', opts: { prefix?: string } = {}): Lab {
    sweepStaleLabs();
    const lab = new Lab(tag, opts.prefix);
    live.add(lab);
    installHandlers();
    return lab;
  }

  /** Full namespace name for a short one ("rs1" → "ulvs-123-abcdef-rs1"). */
  ns(short: string): string {
    return short.startsWith(this.prefix) ? short : this.prefix + short;
  }

  /** Creates a namespace with lo up; returns its full name. */
  async addNs(short: string, sysctls: Record<string, string | number> = {}): Promise<string> {
    const name = this.ns(short);
    await run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    for (const [k, v] of Object.entries(sysctls)) await this.sysctl(name, k, v);
    return name;
  }

  /** Runs `ip -n NS <args>` (e.g. ip(ns, ['route', 'add', 'default', 'via', '10.0.0.1'])). */
  ip(ns: string, args: string[], opts?: RunOptions): Promise<RunResult> {
    return run('ip', ['-n', this.ns(ns), ...args], opts);
  }

  /** A veth pair between two namespaces (or within one), brought up with the given addresses. */
  async veth(a: VethEnd, b: VethEnd): Promise<void> {
    const na = this.ns(a.ns);
    const nb = this.ns(b.ns);
    await run('ip', ['link', 'add', a.ifname, 'netns', na, 'type', 'veth', 'peer', 'name', b.ifname, 'netns', nb]);
    for (const [end, ns] of [[a, na], [b, nb]] as const) {
      if (end.mac) await run('ip', ['-n', ns, 'link', 'set', end.ifname, 'address', end.mac]);
      if (end.mtu) await run('ip', ['-n', ns, 'link', 'set', end.ifname, 'mtu', String(end.mtu)]);
      for (const cidr of end.addrs ?? []) await this.addr(ns, end.ifname, cidr);
      await run('ip', ['-n', ns, 'link', 'set', end.ifname, 'up']);
    }
  }

  /** A bridge in `ns` (up, STP off, no forwarding delay). */
  async bridge(ns: string, br: string, addrs: string[] = []): Promise<void> {
    const n = this.ns(ns);
    await run('ip', ['-n', n, 'link', 'add', br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
    for (const cidr of addrs) await this.addr(n, br, cidr);
    await run('ip', ['-n', n, 'link', 'set', br, 'up']);
  }

  /** Enslaves `ifname` to bridge `br` (both in `ns`). */
  async attach(ns: string, ifname: string, br: string): Promise<void> {
    await run('ip', ['-n', this.ns(ns), 'link', 'set', ifname, 'master', br, 'up']);
  }

  async addr(ns: string, ifname: string, cidr: string): Promise<void> {
    const args = ['-n', this.ns(ns), 'addr', 'add', cidr, 'dev', ifname];
    // IPv6 addresses skip duplicate address detection, so they are usable at once.
    if (cidr.includes(':')) args.push('nodad');
    await run('ip', args);
  }

  /** `ip route add <spec…>` in ns, e.g. route(ns, ['default', 'via', '10.0.1.254']). */
  async route(ns: string, spec: string[]): Promise<void> {
    await run('ip', ['-n', this.ns(ns), 'route', 'add', ...spec]);
  }

  /** sysctl -w key=value inside ns ("net.ipv4.ip_forward", 1). */
  async sysctl(ns: string, key: string, value: string | number): Promise<void> {
    await this.exec(ns, 'sysctl', ['-qw', `${key}=${value}`]);
  }

  /** `ethtool -K ifname feature on|off …` inside ns, e.g. offload(ns, 'c0', { tx: false, tso: false }). */
  async offload(ns: string, ifname: string, features: Record<string, boolean>): Promise<void> {
    const args = ['-K', ifname];
    for (const [k, v] of Object.entries(features)) args.push(k, v ? 'on' : 'off');
    await this.exec(ns, 'ethtool', args);
  }

  /** Runs a command inside ns (via `ip netns exec`), with a timeout. */
  exec(ns: string, cmd: string, args: string[] = [], opts?: RunOptions): Promise<RunResult> {
    return run('ip', ['netns', 'exec', this.ns(ns), cmd, ...args], opts);
  }

  /**
   * Starts a long-running command inside ns. It is killed at teardown, and (where
   * setpriv exists) also if this process dies without tearing down.
   */
  spawn(ns: string, cmd: string, args: string[] = [], env?: NodeJS.ProcessEnv): LabProcess {
    const full = this.ns(ns);
    const child = spawn('ip', ['netns', 'exec', full, ...pdeathPrefix(), cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env,
    });
    let out = '';
    const waiters: Array<() => void> = [];
    const onData = (d: string) => {
      out += d;
      for (const w of waiters.slice()) w();
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', onData);
    const exitP = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('close', (code, signal) => {
        for (const w of waiters.slice()) w();
        resolve({ code, signal });
      });
      child.on('error', (e) => {
        out += `\n[spawn error] ${e.message}\n`;
        resolve({ code: null, signal: null });
      });
    });
    let exited = false;
    void exitP.then(() => { exited = true; });
    const proc: LabProcess = {
      ns: full,
      child,
      pid: child.pid ?? -1,
      output: () => out,
      exited: () => exitP,
      waitFor: (re, timeoutMs = 10_000) => new Promise((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) { done(); resolve(m); return; }
          if (exited || child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(new Error(`${cmd} exited before printing ${re}; output:\n${out.slice(-2000)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${cmd}; output:\n${out.slice(-2000)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          const i = waiters.indexOf(check);
          if (i >= 0) waiters.splice(i, 1);
        };
        waiters.push(check);
        check();
      }),
      stop: async (graceMs = 2000) => {
        if (!exited && child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
          await exitP;
          clearTimeout(t);
        }
        this.procs.delete(proc);
      },
    };
    this.procs.add(proc);
    return proc;
  }

  /** Registers a synchronous cleanup run at teardown (before namespaces go). */
  onTeardown(fn: () => void): void {
    this.cleanups.push(fn);
  }

  /** Names of the namespaces this lab created. */
  get namespaceNames(): readonly string[] {
    return this.namespaces;
  }

  /** Stops processes, runs cleanups and deletes every namespace of the lab. Safe to call twice. */
  async teardown(): Promise<void> {
    if (this.down) return;
    await Promise.all([...this.procs].map((p) => p.stop(1000).catch(() => undefined)));
    this.teardownSync();
  }

  /** The synchronous teardown used from exit/signal handlers. */
  teardownSync(): void {
    if (this.down) return;
    this.down = true;
    live.delete(this);
    for (const p of this.procs) {
      try { p.child.kill('SIGKILL'); } catch { /* gone */ }
    }
    this.procs.clear();
    for (const fn of this.cleanups.splice(0).reverse()) {
      try { fn(); } catch { /* keep tearing down */ }
    }
    for (const ns of this.namespaces) {
      killNsProcesses(ns);
      spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
    }
    removeHandlers();
  }

  /**
   * Leaves the lab standing when this process exits (`ulvs lab up`): forgets its
   * namespaces, processes and cleanups without touching them. Processes started
   * with spawn() still die with this process (pipes, pdeathsig): a lab meant to
   * outlive it starts its processes detached itself.
   */
  detach(): void {
    if (this.down) return;
    this.down = true;
    live.delete(this);
    this.procs.clear();
    this.cleanups.length = 0;
    removeHandlers();
  }

  /** Namespaces of this lab that still exist (for tests of the teardown). */
  remaining(): string[] {
    return this.namespaces.filter((n) => existsSync(`/var/run/netns/${n}`));
  }
}
