/**
 * The standard ulvs lab (io-prototype-measurements.md §1), as one reusable
 * builder for `ulvs lab`, the end-to-end tests and the wire benchmark:
 *
 *   client c0 10.0.0.1/24 ── veth ── d0 10.0.0.254/24 [director] d1 10.0.1.254/24 ── veth ── sw:br0
 *   client c1 10.0.1.100/24 ── veth ── sw:br0        (optional direct path, bypasses the director)
 *   rsN eth0 10.0.1.N/24 ── veth ── sw:br0           (default gw 10.0.1.254, for NAT)
 *   VIP 10.0.0.100, on the client's subnet, so the client ARPs for it on c0
 *
 * The director namespace runs one of:
 * - `ulvs`: `ulvs daemon` (our director; the VIP is not a local address there);
 * - `kernel-dnat`: a plain router with an nftables DNAT round robin
 *   (`numgen inc mod N`) and the VIP on d0, the kernel baseline;
 * - `none`: a plain router (tests that start a director themselves).
 * The director namespace forwards IP (ip_forward=1) in every variant: DR and TUN
 * replies come back from the real servers through their default gateway, the
 * director, as they would through any router; un-rewritten NAT replies and VIP
 * traffic must be kept from the kernel by the daemon's own nftables guard.
 *
 * Real servers run the Node name server (servers.ts: HTTP "hello from rsN", UDP
 * "rsN <payload>") or nginx; `prepareDirectReturn` readies them for DR/TUN (VIP on
 * lo, arp_ignore=1/arp_announce=2) and `startTunDecap` runs `ulvs tun-decap`.
 *
 * With `detached` (for `ulvs lab up`) every process outlives this one (own
 * session, output to log files under `logDir`) and `detach()` leaves the
 * namespaces standing; `destroyLab(prefix)` (`ulvs lab down`) removes them.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, killNsProcesses, run, type LabProcess, type RunOptions, type RunResult } from './netns.js';
import { nginxAvailable, startNameServer, startNginx } from './servers.js';

/** `bin/ulvs.js` of this checkout (dist/src/lab/ → ../../../bin). */
export const ULVS_BIN = fileURLToPath(new URL('../../../bin/ulvs.js', import.meta.url));
const SERVER_MAIN = fileURLToPath(new URL('./server-main.js', import.meta.url));

/** The UDP port on which the lab's tunnel decapsulators (startTunDecap) accept GUE. */
export const LAB_GUE_PORT = 6080;

export type DirectorKind = 'ulvs' | 'kernel-dnat' | 'none';

export const LAB_ADDR = {
  client: '10.0.0.1',
  vip: '10.0.0.100',
  directorOuter: '10.0.0.254',
  directorInner: '10.0.1.254',
  clientDirect: '10.0.1.100',
  /** Real server i (1-based) is 10.0.1.i. */
  rs: (i: number): string => `10.0.1.${i}`,
  /** Extra client address k (0-based) is 10.0.0.(11 + k). */
  clientAlias: (k: number): string => `10.0.0.${11 + k}`,
} as const;

export const DEFAULT_HTTP_PORT = 80;
export const DEFAULT_UDP_PORT = 5000;
export const DEFAULT_PREFIX = 'ulvs-lab-';
const MAX_SERVERS = 9;
const MAX_ALIASES = 80;

export interface LabOptions {
  /** Real servers rs1..rsN (default 2, at most 9). */
  servers?: number;
  /** What runs in the director namespace (default 'ulvs'). */
  director?: DirectorKind;
  /** Also connect the client to the bridge (c1 10.0.1.100): a path that bypasses the director. */
  direct?: boolean;
  /** Extra client addresses on c0, 10.0.0.11 upwards (default 0), e.g. for sh/mh. */
  clientAliases?: number;
  /** HTTP server on the real servers (default 'node'; 'nginx' needs nginx installed). */
  httpServer?: 'node' | 'nginx' | 'none';
  nginxWorkers?: number;
  /** HTTP port of the real servers (default 80). */
  httpPort?: number;
  /** UDP name-server port of the real servers (default 5000; Node server only, 0 = none). */
  udpPort?: number;
  /** veth tx checksum offload on the lab's endpoints (default true, the veth default). */
  offload?: boolean;
  /** Arguments for `ulvs daemon` (default: `--interface d0 --interface d1`). */
  daemonArgs?: string[];
  /** Ready the real servers for DR/TUN at once (VIP on lo, ARP sysctls; default false). */
  directReturn?: boolean;
  /** Run `ulvs tun-decap` on every real server at once (default false). */
  tunDecap?: boolean;
  /** Fixed namespace prefix instead of the per-process one (`ulvs lab up`). */
  prefix?: string;
  /** Processes outlive this process (own session, output in logDir): `ulvs lab up`. */
  detached?: boolean;
  /** Where detached processes write their output and the lab its state (default /run/ulvs-lab/<prefix>). */
  logDir?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** A process of the lab: attached (a LabProcess) or detached (output in a log file). */
export interface LabProc {
  readonly ns: string;
  readonly pid: number;
  readonly what: string;
  /** Where its output goes when detached. */
  readonly logFile: string | null;
  output(): string;
  running(): boolean;
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  stop(): Promise<void>;
}

export interface CurlOptions {
  /** Path and query (default "/"). */
  path?: string;
  /** Source addresses to send from (curl --interface); each sends `count` requests. Default: the primary client address. */
  from?: string[];
  /** Target (default VIP:httpPort); e.g. a real server's address over the direct path. */
  host?: string;
  port?: number;
  /** Per-request limit in seconds (default 3). */
  maxTimeS?: number;
  /** Reuse connections (default false: "Connection: close", one TCP connection per request). */
  keepAlive?: boolean;
}

export interface CurlRecord {
  /** Which server answered ("rs2"), or null when the request failed. */
  server: string | null;
  /** HTTP status (0 when no response). */
  status: number;
  /** Source address and port the request went out from. */
  local: string;
  from: string;
  /** Seconds the request took. */
  seconds: number;
}

export interface UdpRecord {
  server: string | null;
  from: string;
}

/** A long-lived TCP connection through the lab (one HTTP request per `request()`). */
export interface LabSession {
  /** Server that answered the first request. */
  readonly first: string;
  /** Sends one more request on the same connection; resolves with the server that answered. */
  request(timeoutMs?: number): Promise<string>;
  close(): Promise<void>;
}

export interface LabTopology {
  readonly lab: Lab;
  readonly kind: DirectorKind;
  /** Full namespace names. */
  readonly ns: { client: string; director: string; sw: string; rs: string[] };
  /** Short real-server names ("rs1", …), index i ↔ address LAB_ADDR.rs(i + 1). */
  readonly rsNames: string[];
  readonly rsAddrs: string[];
  readonly vip: string;
  readonly client: string;
  readonly clientAliases: string[];
  /** Client address on the direct path, or null without one. */
  readonly clientDirect: string | null;
  readonly httpPort: number;
  readonly udpPort: number;
  readonly httpServer: 'node' | 'nginx' | 'none';
  /** The `ulvs daemon` process (director 'ulvs'), else null. */
  readonly daemon: LabProc | null;
  readonly processes: readonly LabProc[];
  readonly logDir: string | null;
  /** Runs our ipvsadm in the director namespace (resolves even when it fails: check `code`). */
  ipvsadm(args: string[], opts?: RunOptions & { input?: string }): Promise<RunResult>;
  /** Runs a command in a lab namespace given by short name ("client", "director", "rs1", …). */
  exec(short: string, cmd: string, args?: string[], opts?: RunOptions): Promise<RunResult>;
  /** `count` HTTP requests per source address, sequentially, with curl in the client namespace. */
  curl(count: number, opts?: CurlOptions): Promise<CurlRecord[]>;
  /** `count` UDP requests per source address, each from a new socket (new source port). */
  udp(count: number, opts?: { from?: string[]; host?: string; port?: number; timeoutMs?: number }): Promise<UdpRecord[]>;
  /** Opens a keep-alive TCP connection to VIP (or host) and sends its first request. */
  session(opts?: { from?: string; host?: string; port?: number; timeoutMs?: number }): Promise<LabSession>;
  /** veth tx checksum offload (and TSO/GSO with it) on or off on every endpoint. */
  setOffload(on: boolean): Promise<void>;
  /** VIP on lo, arp_ignore=1 and arp_announce=2 on every real server (DR and TUN). */
  prepareDirectReturn(): Promise<void>;
  /** Starts `ulvs tun-decap` on every real server (idempotent). */
  startTunDecap(): Promise<void>;
  stopTunDecap(): Promise<void>;
  /** Stops the director daemon (if running) and starts a new one. */
  restartDaemon(): Promise<void>;
  /** Keeps everything running after this process exits (`ulvs lab up`). */
  detach(): void;
  teardown(): Promise<void>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Environment for lab commands: our own ULVS_SOCKET must not redirect the lab's CLI. */
function labEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.ULVS_SOCKET;
  return env;
}

function wrapAttached(p: LabProcess, what: string): LabProc {
  return {
    ns: p.ns, pid: p.pid, what, logFile: null,
    output: () => p.output(),
    running: () => p.child.exitCode === null && p.child.signalCode === null,
    waitFor: (re, ms) => p.waitFor(re, ms),
    stop: () => p.stop(),
  };
}

/** Whether `pid` is a live process (a zombie waiting for its reaper counts as gone). */
export function processRunning(pid: number): boolean {
  try {
    // The state follows the parenthesised command name, which may itself contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Starts `argv` in `ns` in its own session, output appended to `logFile`; it survives our exit. */
function spawnDetached(ns: string, argv: string[], logFile: string, what: string): LabProc {
  const fd = openSync(logFile, 'a');
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { detached: true, stdio: ['ignore', fd, fd], env: labEnv() });
  closeSync(fd);
  child.unref();
  // Reap it if it dies while we still run (no zombie); after we exit, init does.
  child.on('error', () => undefined);
  const pid = child.pid ?? -1;
  const output = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const running = () => pid > 0 && child.exitCode === null && child.signalCode === null && processRunning(pid);
  return {
    ns, pid, what, logFile, output, running,
    waitFor: async (re, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(output());
        if (m) return m;
        if (!running()) throw new Error(`${what} exited before printing ${re}; output:\n${output().slice(-2000)}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${re} from ${what}; output:\n${output().slice(-2000)}`);
        await sleep(50);
      }
    },
    stop: async () => {
      if (!running()) return;
      try { process.kill(pid, 'SIGTERM'); } catch { return; }
      for (let i = 0; i < 40 && running(); i++) await sleep(50);
      if (running()) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    },
  };
}

/** The nftables ruleset of the kernel-dnat director: round robin by `numgen inc mod N`. */
export function kernelDnatRuleset(vip: string, rsAddrs: string[], httpPort: number, udpPort: number): string {
  const map = rsAddrs.map((a, i) => `${i} : ${a}`).join(', ');
  const rules = [`ip daddr ${vip} tcp dport ${httpPort} dnat to numgen inc mod ${rsAddrs.length} map { ${map} }`];
  if (udpPort) rules.push(`ip daddr ${vip} udp dport ${udpPort} dnat to numgen inc mod ${rsAddrs.length} map { ${map} }`);
  return `table ip ulvs_lab_dnat {\n  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n${
    rules.map((r) => `    ${r}\n`).join('')}  }\n}\n`;
}

/** A node script run in the client namespace: `count` UDP requests per source, one socket each. */
const UDP_SCRIPT = `
const dgram = require('node:dgram');
const [host, port, count, timeoutMs, ...froms] = process.argv.slice(1);
(async () => {
  for (const from of froms) for (let i = 0; i < Number(count); i++) {
    const answer = await new Promise((resolve) => {
      const s = dgram.createSocket('udp4');
      const t = setTimeout(() => { s.close(); resolve(''); }, Number(timeoutMs));
      s.on('message', (m) => { clearTimeout(t); s.close(); resolve(m.toString()); });
      s.on('error', () => { clearTimeout(t); resolve(''); });
      s.bind(0, from === '-' ? undefined : from, () => s.send('who', Number(port), host));
    });
    const name = /^(\\S+) who$/.exec(answer);
    process.stdout.write((name ? name[1] : '-') + ' ' + from + '\\n');
  }
})();
`;

/**
 * A node script run in the client namespace: one keep-alive HTTP/1.1 connection;
 * a request at start and one per SIGUSR1; prints "answer <server>" per response,
 * "closed" when the peer closes. Exits on SIGTERM.
 */
const SESSION_SCRIPT = `
const net = require('node:net');
const [host, port, from] = process.argv.slice(1);
const opts = { host, port: Number(port) };
if (from !== '-') opts.localAddress = from;
const sock = net.connect(opts);
let buf = '';
const ask = () => sock.write('GET / HTTP/1.1\\r\\nHost: ' + host + '\\r\\nConnection: keep-alive\\r\\n\\r\\n');
sock.on('connect', ask);
sock.on('data', (d) => {
  buf += d.toString('latin1');
  for (;;) {
    const h = buf.indexOf('\\r\\n\\r\\n');
    if (h < 0) return;
    const m = /content-length: *(\\d+)/i.exec(buf.slice(0, h));
    const len = m ? Number(m[1]) : 0;
    if (buf.length < h + 4 + len) return;
    const body = buf.slice(h + 4, h + 4 + len);
    buf = buf.slice(h + 4 + len);
    const n = /hello from (\\S+)/.exec(body);
    process.stdout.write('answer ' + (n ? n[1] : '?') + '\\n');
  }
});
sock.on('error', (e) => process.stdout.write('error ' + e.message + '\\n'));
sock.on('close', () => { process.stdout.write('closed\\n'); process.exit(0); });
process.on('SIGUSR1', ask);
process.on('SIGTERM', () => { sock.end(); setTimeout(() => process.exit(0), 200); });
`;

/** Parses the curl output of LabTopology.curl (body lines, then one "-w" status line per request). */
export function parseCurlOutput(out: string): CurlRecord[] {
  const recs: CurlRecord[] = [];
  let pending: string | null = null;
  for (const line of out.split('\n')) {
    const body = /^hello from (\S+)$/.exec(line);
    if (body) {
      pending = body[1]!;
      continue;
    }
    const st = /^@@ (\d{3}) (\S*) (\S*) ([\d.]+) (\S+)$/.exec(line);
    if (st) {
      const status = Number(st[1]);
      recs.push({
        server: status === 200 ? pending : null, status, local: `${st[2]}:${st[3]}`, seconds: Number(st[4]), from: st[5]!,
      });
      pending = null;
    }
  }
  return recs;
}

/** Builds the lab; on any failure everything built so far is torn down and the error rethrown. */
export async function buildLab(opts: LabOptions = {}): Promise<LabTopology> {
  const n = opts.servers ?? 2;
  if (!Number.isInteger(n) || n < 1 || n > MAX_SERVERS) throw new Error(`servers must be 1..${MAX_SERVERS}`);
  const aliases = opts.clientAliases ?? 0;
  if (!Number.isInteger(aliases) || aliases < 0 || aliases > MAX_ALIASES) throw new Error(`clientAliases must be 0..${MAX_ALIASES}`);
  const kind = opts.director ?? 'ulvs';
  const httpServer = opts.httpServer ?? 'node';
  if (httpServer === 'nginx' && !nginxAvailable()) throw new Error('nginx is not installed (use the Node server)');
  if (httpServer === 'nginx' && opts.detached) throw new Error('detached labs run the Node server only');
  const httpPort = opts.httpPort ?? DEFAULT_HTTP_PORT;
  const udpPort = httpServer === 'node' ? (opts.udpPort ?? DEFAULT_UDP_PORT) : 0;
  const log = opts.log ?? (() => undefined);
  const detached = opts.detached ?? false;
  const lab = Lab.create('topology', { prefix: opts.prefix });
  let logDir: string | null = null;
  if (detached) {
    logDir = opts.logDir ?? join('/run/ulvs-lab', lab.prefix.replace(/-+$/, ''));
    mkdirSync(logDir, { recursive: true });
  }

  const rsNames = Array.from({ length: n }, (_, i) => `rs${i + 1}`);
  const rsAddrs = rsNames.map((_, i) => LAB_ADDR.rs(i + 1));
  const aliasAddrs = Array.from({ length: aliases }, (_, k) => LAB_ADDR.clientAlias(k));
  const processes: LabProc[] = [];
  const tunDecaps = new Map<string, LabProc>();
  let daemon: LabProc | null = null;
  // Endpoints whose offload setOffload toggles: [namespace short name, interface].
  const endpoints: Array<[string, string]> = [['client', 'c0'], ['director', 'd0'], ['director', 'd1']];

  const startProc = async (short: string, argv: string[], what: string, ready: RegExp, logName: string): Promise<LabProc> => {
    let p: LabProc;
    if (detached) {
      p = spawnDetached(lab.ns(short), argv, join(logDir!, `${logName}.log`), what);
    } else {
      p = wrapAttached(lab.spawn(short, argv[0]!, argv.slice(1), labEnv()), what);
    }
    processes.push(p);
    await p.waitFor(ready, 20_000);
    return p;
  };

  const startDaemon = async () => {
    const args = opts.daemonArgs ?? ['--interface', 'd0', '--interface', 'd1'];
    daemon = await startProc('director', [process.execPath, ULVS_BIN, 'daemon', ...args], 'ulvs daemon', /director ready/, 'director');
  };

  const topo: LabTopology = {
    lab, kind,
    ns: { client: lab.ns('client'), director: lab.ns('director'), sw: lab.ns('sw'), rs: rsNames.map((r) => lab.ns(r)) },
    rsNames, rsAddrs,
    vip: LAB_ADDR.vip,
    client: LAB_ADDR.client,
    clientAliases: aliasAddrs,
    clientDirect: opts.direct ? LAB_ADDR.clientDirect : null,
    httpPort, udpPort,
    httpServer,
    get daemon() { return daemon; },
    processes,
    logDir,

    ipvsadm: (args, o = {}) => lab.exec('director', process.execPath, [ULVS_BIN, 'ipvsadm', ...args],
      { timeoutMs: 15_000, ...o, allowFail: true, env: labEnv() }),

    exec: (short, cmd, args = [], o) => lab.exec(short, cmd, args, o),

    curl: async (count, o = {}) => {
      const host = o.host ?? LAB_ADDR.vip;
      const port = o.port ?? httpPort;
      const froms = o.from ?? ['-'];
      const maxTime = o.maxTimeS ?? 3;
      const url = `http://${host}:${port}${o.path ?? '/'}`;
      // One shell per call; one curl per source address, its URL globbed `count` times
      // ("?n=[1-N]"), so each request is a new connection without a process per request.
      const script = `for a in "$@"; do
  if [ "$a" = - ]; then src=""; else src="--interface $a"; fi
  curl -s --connect-timeout 2 --max-time ${maxTime} ${o.keepAlive ? '' : "-H 'Connection: close'"} $src \\
    -w "\\n@@ %{http_code} %{local_ip} %{local_port} %{time_total} $a\\n" '${url}${url.includes('?') ? '&' : '?'}n=[1-${count}]'
done`;
      const r = await lab.exec('client', 'sh', ['-c', script, 'sh', ...froms], {
        timeoutMs: froms.length * count * (maxTime + 1) * 1000 + 10_000, allowFail: true,
      });
      return parseCurlOutput(r.stdout);
    },

    udp: async (count, o = {}) => {
      const timeoutMs = o.timeoutMs ?? 2000;
      const froms = o.from ?? ['-'];
      const r = await lab.exec('client', process.execPath, ['-e', UDP_SCRIPT, o.host ?? LAB_ADDR.vip,
        String(o.port ?? udpPort), String(count), String(timeoutMs), ...froms], {
        timeoutMs: froms.length * count * timeoutMs + 10_000,
      });
      return r.stdout.trim().split('\n').filter(Boolean).map((l) => {
        const [name, from] = l.split(' ');
        return { server: name === '-' ? null : name!, from: from! };
      });
    },

    session: async (o = {}) => {
      const timeoutMs = o.timeoutMs ?? 5000;
      const p = lab.spawn('client', process.execPath, ['-e', SESSION_SCRIPT, o.host ?? LAB_ADDR.vip,
        String(o.port ?? httpPort), o.from ?? '-']);
      const answers = () => [...p.output().matchAll(/^answer (\S+)$/gm)].map((m) => m[1]!);
      const waitAnswer = async (k: number, ms: number): Promise<string> => {
        const deadline = Date.now() + ms;
        for (;;) {
          const a = answers();
          if (a.length > k) return a[k]!;
          if (/^(closed|error .*)$/m.test(p.output())) throw new Error(`session ended: ${p.output().trim()}`);
          if (Date.now() > deadline) throw new Error(`no answer on the session within ${ms} ms: ${p.output().trim()}`);
          await sleep(20);
        }
      };
      let first: string;
      try {
        first = await waitAnswer(0, timeoutMs);
      } catch (e) {
        await p.stop();
        throw e;
      }
      return {
        first,
        request: async (ms = timeoutMs) => {
          const k = answers().length;
          p.child.kill('SIGUSR1');
          return waitAnswer(k, ms);
        },
        close: () => p.stop(),
      };
    },

    setOffload: async (on) => {
      // tx off also turns TSO/GSO off (they need checksum offload); tx on brings back what was wanted.
      const features = on ? { tx: true, tso: true, gso: true } : { tx: false, tso: false, gso: false };
      await Promise.all(endpoints.map(([ns, ifname]) => lab.offload(ns, ifname, features)));
    },

    prepareDirectReturn: async () => {
      await Promise.all(rsNames.map(async (rs) => {
        const have = await lab.ip(rs, ['-4', '-o', 'addr', 'show', 'dev', 'lo']);
        if (!have.stdout.includes(` ${LAB_ADDR.vip}/32`)) await lab.addr(rs, 'lo', `${LAB_ADDR.vip}/32`);
        // Only the director may answer ARP for the VIP (arp_ignore=1); never source ARP from it (arp_announce=2).
        for (const dev of ['all', 'eth0']) {
          await lab.sysctl(rs, `net.ipv4.conf.${dev}.arp_ignore`, 1);
          await lab.sysctl(rs, `net.ipv4.conf.${dev}.arp_announce`, 2);
        }
      }));
    },

    startTunDecap: async () => {
      await Promise.all(rsNames.map(async (rs) => {
        if (tunDecaps.get(rs)?.running()) return;
        const p = await startProc(rs, [process.execPath, ULVS_BIN, 'tun-decap', '--iface', 'eth0', '--gue-port', String(LAB_GUE_PORT)], `tun-decap on ${rs}`,
          /^ready /m, `${rs}-tun-decap`);
        tunDecaps.set(rs, p);
      }));
    },

    stopTunDecap: async () => {
      await Promise.all([...tunDecaps.values()].map((p) => p.stop()));
      tunDecaps.clear();
    },

    restartDaemon: async () => {
      if (kind !== 'ulvs') throw new Error(`the ${kind} lab has no daemon`);
      if (daemon) await daemon.stop();
      await startDaemon();
    },

    detach: () => {
      if (logDir) {
        writeFileSync(join(logDir, 'state.json'), JSON.stringify({
          prefix: lab.prefix, namespaces: lab.namespaceNames, created: new Date().toISOString(),
          processes: processes.filter((p) => p.running()).map((p) => ({ ns: p.ns, pid: p.pid, what: p.what, log: p.logFile })),
        }, null, 2));
      }
      lab.detach();
    },

    teardown: async () => {
      await Promise.all(processes.map((p) => p.stop().catch(() => undefined)));
      await lab.teardown();
      if (logDir && !opts.logDir) rmSync(logDir, { recursive: true, force: true });
    },
  };

  try {
    log(`namespaces ${lab.prefix}{client,director,sw,${rsNames.join(',')}}`);
    const quiet = {
      // No IPv6: router solicitations and MLD reports would be stray frames for the director.
      'net.ipv6.conf.all.disable_ipv6': 1,
      'net.ipv6.conf.default.disable_ipv6': 1,
      'net.ipv4.conf.all.rp_filter': 0,
      'net.ipv4.conf.default.rp_filter': 0,
    };
    await lab.addNs('client', {
      ...quiet, 'net.ipv4.ip_local_port_range': '1024 65000', 'net.ipv4.tcp_tw_reuse': 1,
    });
    await lab.addNs('director', {
      ...quiet, 'net.ipv4.ip_forward': 1,
      // DR/TUN replies enter on d1 from the VIP, which lives on d0's side: no redirects, no rp_filter.
      'net.ipv4.conf.all.send_redirects': 0, 'net.ipv4.conf.default.send_redirects': 0,
    });
    await lab.addNs('sw', quiet);
    // A switch, not a firewall: with br_netfilter loaded, every bridged frame would also pass the
    // IP hooks and a route lookup (bridge-nf-call-*), a per-packet cost charged to the sender,
    // which was a quarter of the director's sending time with TUN segments. Absent without
    // br_netfilter, hence best effort.
    for (const k of ['iptables', 'ip6tables', 'arptables']) {
      await lab.exec('sw', 'sysctl', ['-qw', `net.bridge.bridge-nf-call-${k}=0`], { allowFail: true });
    }
    for (const rs of rsNames) await lab.addNs(rs, quiet);

    await lab.bridge('sw', 'br0');
    await lab.veth(
      { ns: 'client', ifname: 'c0', addrs: [`${LAB_ADDR.client}/24`, ...aliasAddrs.map((a) => `${a}/24`)] },
      { ns: 'director', ifname: 'd0', addrs: [`${LAB_ADDR.directorOuter}/24`] },
    );
    await lab.veth({ ns: 'director', ifname: 'd1', addrs: [`${LAB_ADDR.directorInner}/24`] }, { ns: 'sw', ifname: 'sw-d1' });
    await lab.attach('sw', 'sw-d1', 'br0');
    for (let i = 0; i < n; i++) {
      const rs = rsNames[i]!;
      await lab.veth({ ns: rs, ifname: 'eth0', addrs: [`${rsAddrs[i]}/24`] }, { ns: 'sw', ifname: `sw-${rs}` });
      await lab.attach('sw', `sw-${rs}`, 'br0');
      await lab.route(rs, ['default', 'via', LAB_ADDR.directorInner]);
      endpoints.push([rs, 'eth0']);
    }
    if (opts.direct) {
      await lab.veth({ ns: 'client', ifname: 'c1', addrs: [`${LAB_ADDR.clientDirect}/24`] }, { ns: 'sw', ifname: 'sw-c1' });
      await lab.attach('sw', 'sw-c1', 'br0');
      endpoints.push(['client', 'c1']);
    }
    // Everything else (the VIP, other subnets) goes through the director.
    await lab.route('client', ['default', 'via', LAB_ADDR.directorOuter]);
    if (opts.offload === false) await topo.setOffload(false);
    if (opts.directReturn) await topo.prepareDirectReturn();

    if (kind === 'kernel-dnat') {
      await lab.addr('director', 'd0', `${LAB_ADDR.vip}/32`);
      await lab.exec('director', 'nft', ['-f', '-'], { input: kernelDnatRuleset(LAB_ADDR.vip, rsAddrs, httpPort, udpPort) });
      // Short-connection load leaves many conntrack entries in TIME_WAIT; keep them brief.
      await lab.exec('director', 'sysctl', ['-qw', 'net.netfilter.nf_conntrack_tcp_timeout_time_wait=5'], { allowFail: true });
    }

    log(`real servers: ${httpServer === 'nginx' ? 'nginx' : httpServer === 'node' ? "Node's http" : 'none'}`);
    await Promise.all(rsNames.map(async (rs) => {
      if (httpServer === 'none') return;
      if (httpServer === 'nginx') {
        const s = await startNginx(lab, rs, { name: rs, port: httpPort, workers: opts.nginxWorkers });
        processes.push(wrapAttached(s.proc, `nginx on ${rs}`));
        return;
      }
      const argv = [process.execPath, SERVER_MAIN, '--name', rs, '--http', String(httpPort), '--host', '0.0.0.0'];
      if (udpPort) argv.push('--udp', String(udpPort));
      if (detached) await startProc(rs, argv, `name server on ${rs}`, /^ready /m, `${rs}-server`);
      else processes.push(wrapAttached((await startNameServer(lab, rs, {
        name: rs, httpPort, udpPort: udpPort || undefined, host: '0.0.0.0',
      })).proc, `name server on ${rs}`));
    }));
    if (opts.tunDecap) await topo.startTunDecap();
    if (kind === 'ulvs') {
      log('director: ulvs daemon');
      await startDaemon();
    }
  } catch (e) {
    await topo.teardown().catch(() => undefined);
    throw e;
  }
  return topo;
}

interface LabState {
  prefix: string;
  namespaces: string[];
  processes?: Array<{ ns: string; pid: number; what: string; log: string | null }>;
}

/** The state file of a detached lab, or null. */
export function readLabState(prefix = DEFAULT_PREFIX, logDir?: string): (LabState & { dir: string }) | null {
  const dir = logDir ?? join('/run/ulvs-lab', prefix.replace(/-+$/, ''));
  try {
    return { ...(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LabState), dir };
  } catch {
    return null;
  }
}

/** Namespaces whose name starts with `prefix`. */
export function labNamespaces(prefix = DEFAULT_PREFIX): string[] {
  try {
    return readdirSync('/var/run/netns').filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

/**
 * Removes a detached lab (`ulvs lab down`): stops its processes, deletes every
 * namespace named `<prefix>…` and its state directory. Returns the namespaces removed.
 */
export async function destroyLab(prefix = DEFAULT_PREFIX, logDir?: string): Promise<string[]> {
  if (!prefix.startsWith('ulvs')) throw new Error(`refusing to remove namespaces outside ulvs ('${prefix}')`);
  const state = readLabState(prefix, logDir);
  // Polite first (the daemon removes its nftables guard, tun-decap its table), then by force.
  for (const p of state?.processes ?? []) {
    try { process.kill(p.pid, 'SIGTERM'); } catch { /* gone */ }
  }
  for (let i = 0; i < 40 && (state?.processes ?? []).some((p) => processRunning(p.pid)); i++) await sleep(50);
  const names = [...new Set([...(state?.namespaces ?? []), ...labNamespaces(prefix)])].filter((n) => existsSync(`/var/run/netns/${n}`));
  const removed: string[] = [];
  for (const ns of names) {
    killNsProcesses(ns);
    const r = await run('ip', ['netns', 'del', ns], { allowFail: true });
    if (r.code === 0) removed.push(ns);
  }
  if (state) rmSync(state.dir, { recursive: true, force: true });
  return removed;
}
