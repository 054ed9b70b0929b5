/**
 * Real `ulvs daemon` processes for the daemon tests: throw-away network
 * namespaces (`ulvs-t-<random>`, always deleted), starting a daemon and waiting
 * for its ready line, and running `ulvsadm` as a separate process (in a
 * namespace, optionally as another user, optionally under another program name
 * through a symlink, like npm's bin links).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, cpSync, rmSync, symlinkSync, accessSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { withNetns } from '../../src/io/afpacket-libc.js';
import { SocketIpvsApi } from '../../src/ctl/client.js';
import { DEFAULT_SOCKET_NAME, socketAddress } from '../../src/ctl/protocol.js';

/** The repository root (tests run from dist/test/daemon/). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = join(REPO, 'bin', 'ulvs.js');

export const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

function netnsWorks(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (!IS_ROOT) return 'creating network namespaces needs root';
  const probe = `ulvs-t-probe${randomBytes(3).toString('hex')}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 });
  if (add.error) return `iproute2 'ip' not usable: ${add.error.message}`;
  if (add.status !== 0) return `cannot create a network namespace: ${add.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe], { timeout: 10_000 });
  return null;
}

const netnsReason = netnsWorks();
/** `{ skip: reason }` for tests that need namespaces (root), else `{}`. */
export const NETNS_SKIP: { skip?: string } = netnsReason === null ? {} : { skip: netnsReason };

function nobodyCanRead(path: string): string | null {
  // `env -u NODE_OPTIONS`: the test runner re-adds its preloads (which live in the private
  // checkout) to the environment of every child it sees spawned.
  const r = spawnSync('env', ['-u', 'NODE_OPTIONS', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e',
    `require('fs').accessSync(${JSON.stringify(path)}, require('fs').constants.R_OK)`],
  // Without the test runner's NODE_OPTIONS preloads: they live in the (private) checkout too.
  // From '/': the checkout (our cwd) may be unreachable for that user, and node needs its cwd.
  { timeout: 10_000, env: { ...process.env, NODE_OPTIONS: '' }, cwd: '/' });
  if (r.error) return `setpriv not usable: ${r.error.message}`;
  if (r.status !== 0) return `user nobody cannot read ${path}`;
  return null;
}

/**
 * The program path processes of other users run. A checkout under a private directory
 * (e.g. /root, mode 700) is unreachable for `nobody` even when the checkout itself is
 * world-readable, so as root we copy what `ulvsadm` needs at run time (bin/, dist/src/,
 * package.json: the client path imports no npm package) to a world-readable temporary
 * directory for the duration of the tests.
 */
export let OTHER_USER_BIN = BIN;

/** Whether user `nobody` (65534) can run our program here (root can switch, and the files are world-readable). */
function nobodyWorks(): string | null {
  if (!IS_ROOT) return 'switching to another user needs root';
  if (nobodyCanRead(BIN) === null) return null;
  const copy = mkdtempSync(join(tmpdir(), 'ulvs-run-'));
  process.on('exit', () => rmSync(copy, { recursive: true, force: true }));
  mkdirSync(join(copy, 'dist'));
  cpSync(join(REPO, 'bin'), join(copy, 'bin'), { recursive: true });
  cpSync(join(REPO, 'dist', 'src'), join(copy, 'dist', 'src'), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(copy, 'package.json'));
  spawnSync('chmod', ['-R', 'a+rX', copy]);
  OTHER_USER_BIN = join(copy, 'bin', 'ulvs.js');
  return nobodyCanRead(OTHER_USER_BIN);
}
const nobodyReason = netnsReason ?? nobodyWorks();
export const NOBODY_SKIP: { skip?: string } = nobodyReason === null ? {} : { skip: nobodyReason };

const liveNetns = new Set<string>();
const liveProcs = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of liveProcs) p.kill('SIGKILL');
    for (const ns of liveNetns) spawnSync('ip', ['netns', 'del', ns], { timeout: 5000 });
  });
}

/** Creates a throw-away network namespace with loopback up; delete it with `deleteNetns`. */
export function createNetns(): string {
  installExitHook();
  const name = `ulvs-t-${process.pid}-${randomBytes(3).toString('hex')}`;
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip netns add ${name}: ${r.stderr}`);
  liveNetns.add(name);
  spawnSync('ip', ['-n', name, 'link', 'set', 'lo', 'up'], { timeout: 10_000 });
  return name;
}

export function deleteNetns(name: string): void {
  spawnSync('ip', ['netns', 'del', name], { timeout: 10_000 });
  liveNetns.delete(name);
}

/** A unique abstract socket name, for tests that run without a namespace of their own. */
export function uniqueSocketName(): string {
  return `ulvs-test-${process.pid}-${randomBytes(4).toString('hex')}`;
}

export interface Where {
  /** Network namespace to run in (none: the current one). */
  netns?: string;
  /** $ULVS_SOCKET for clients / --socket for the daemon. */
  socket?: string;
}

export interface RunAs {
  uid: number;
  gid: number;
  /** Supplementary groups (none: cleared). */
  groups?: number[];
}

/**
 * argv prefix that runs a command in `netns` as `as`. It starts with `env -u
 * NODE_OPTIONS`: the test runner re-adds its preload hooks to every child it sees
 * spawned, and those would fail (and print) in a process that is not root.
 */
function prefix(where: Where, as?: RunAs): string[] {
  const p: string[] = ['env', '-u', 'NODE_OPTIONS'];
  if (where.netns !== undefined) p.push('ip', 'netns', 'exec', where.netns);
  if (as !== undefined) {
    p.push('setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`);
    p.push(as.groups && as.groups.length > 0 ? `--groups=${as.groups.join(',')}` : '--clear-groups');
  }
  return p;
}

export interface Transcript {
  stdout: string;
  stderr: string;
  status: number | null;
}

/** Runs a program with a timeout and optional stdin; resolves with its transcript. */
export function runProgram(argv: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<Transcript> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? cleanEnv(), ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolvePromise({ stdout, stderr, status });
    });
    child.stdin.on('error', () => { /* exited before reading */ });
    child.stdin.end(opts.input ?? '');
  });
}

/** Our environment without the test runner's hooks (tap preloads modules into child node processes). */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k.startsWith('TAP') || k.startsWith('_TAP')) continue;
    env[k] = v;
  }
  return env;
}

function clientEnv(where: Where): NodeJS.ProcessEnv {
  const env = cleanEnv();
  if (where.socket !== undefined) env['ULVS_SOCKET'] = where.socket;
  else delete env['ULVS_SOCKET'];
  return env;
}

/**
 * Runs `<name> args...` as its own process, where `name` is how the program is
 * invoked: 'ulvsadm' and 'ipvsadm' etc. go through a symlink of that name to
 * bin/ulvs.js (like npm's bin links); 'ulvs' runs bin/ulvs.js itself.
 */
export function ulvsadm(
  args: string[], where: Where = {}, opts: { as?: RunAs; input?: string; name?: string } = {},
): Promise<Transcript> {
  const name = opts.name ?? 'ulvsadm';
  const bin = name === 'ulvs' ? (opts.as !== undefined ? OTHER_USER_BIN : BIN) : binLink(name);
  // Another user runs from '/': the checkout (our cwd) may be unreachable for them.
  return runProgram([...prefix(where, opts.as), process.execPath, bin, ...args],
    { input: opts.input, env: clientEnv(where), ...(opts.as !== undefined ? { cwd: '/' } : {}) });
}

let linkDir: string | null = null;
/** A world-readable directory of symlinks named like npm's bin links, all pointing at bin/ulvs.js. */
function binLink(name: string): string {
  if (linkDir === null) {
    linkDir = mkdtempSync(join(tmpdir(), 'ulvs-bin-'));
    spawnSync('chmod', ['755', linkDir]);
    const dir = linkDir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const path = join(linkDir, name);
  try {
    accessSync(path, constants.F_OK);
  } catch {
    symlinkSync(OTHER_USER_BIN, path);
  }
  return path;
}

/**
 * A test daemon outside a throw-away namespace must never open this machine's own
 * interfaces (the daemon serves every Ethernet interface by default): as root,
 * take away the capabilities packet I/O needs, so it serves its control socket only.
 */
function noPacketIoOutsideNetns(where: Where): string[] {
  return where.netns === undefined && IS_ROOT ? ['setpriv', '--bounding-set=-net_raw,-net_admin', '--'] : [];
}

export interface DaemonProcess {
  readonly child: ChildProcess;
  readonly where: Where;
  /** The ready line. */
  readonly ready: string;
  output(): { stdout: string; stderr: string };
  /** Sends `signal` and resolves with the exit code/signal. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
}

/**
 * Starts `ulvs daemon` with `args` (plus --socket when `where.socket` is set) and
 * resolves once it printed its ready line; rejects with its output if it exits first.
 */
export function startDaemon(where: Where, args: string[] = [], as?: RunAs): Promise<DaemonProcess> {
  installExitHook();
  const argv = [...prefix(where, as), ...noPacketIoOutsideNetns(where), process.execPath, BIN, 'daemon', '--capacity', '4096', ...args];
  if (where.socket !== undefined) argv.push('--socket', where.socket);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  liveProcs.add(child);
  let stdout = '';
  let stderr = '';
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exitWaiters: Array<(r: { code: number | null; signal: NodeJS.Signals | null }) => void> = [];
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.on('close', (code, signal) => {
    exited = { code, signal };
    liveProcs.delete(child);
    for (const w of exitWaiters.splice(0)) w(exited);
  });
  const waitExit = (): Promise<{ code: number | null; signal: NodeJS.Signals | null }> =>
    exited !== null ? Promise.resolve(exited) : new Promise((r) => exitWaiters.push(r));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`daemon not ready in time: ${stdout}${stderr}`));
    }, 20_000);
    const check = (): void => {
      const m = /^ulvs: director ready .*$/m.exec(stdout);
      if (m === null) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      resolvePromise({
        child, where, ready: m[0],
        output: () => ({ stdout, stderr }),
        alive: () => exited === null,
        stop: (signal = 'SIGTERM') => {
          if (exited === null) child.kill(signal);
          return waitExit();
        },
      });
    };
    child.stdout!.on('data', check);
    void waitExit().then((r) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`daemon exited (${r.code ?? r.signal}) before ready:\n${stdout}${stderr}`), { exit: r, stdout, stderr }));
    });
  });
}

/** Runs `ulvs daemon args...` expecting it to exit by itself (start-up failures); resolves with its transcript. */
export function runDaemonToExit(where: Where, args: string[]): Promise<Transcript> {
  const argv = [...prefix(where), ...noPacketIoOutsideNetns(where), process.execPath, BIN, 'daemon', '--capacity', '4096', ...args];
  if (where.socket !== undefined) argv.push('--socket', where.socket);
  return runProgram(argv, { timeoutMs: 20_000 });
}

/**
 * A place for one test's daemon: a fresh namespace when we are root (torn down
 * with the test), else a unique abstract socket name in the current namespace.
 */
export function freshWhere(t: { teardown(fn: () => void | Promise<void>): void }): Where {
  if (NETNS_SKIP.skip === undefined) {
    const ns = createNetns();
    t.teardown(() => deleteNetns(ns));
    return { netns: ns };
  }
  return { socket: uniqueSocketName() };
}

/** A raw connection to the daemon of `where`, opened from this process (inside its namespace if it has one). */
export function connectIn(where: Where): net.Socket {
  const path = socketAddress(where.socket ?? DEFAULT_SOCKET_NAME).path;
  // The socket is created synchronously inside the namespace and stays there.
  return withNetns(where.netns, () => net.connect(path));
}

/** An IpvsApi client in this process for the daemon of `where`. */
export function clientIn(where: Where): SocketIpvsApi {
  return new SocketIpvsApi(socketAddress(where.socket ?? DEFAULT_SOCKET_NAME), { connect: () => connectIn(where) });
}
