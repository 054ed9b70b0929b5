/**
 * Shared bits of the end-to-end tests: whether they can run (root + namespaces),
 * parsers for what ipvsadm prints (as a user would read it), and a guard that
 * stops a file's remaining cases quickly once the director forwards nothing.
 */
import type { Test } from 'tap';
import { labSupport } from '../../src/lab/netns.js';
import type { CurlRecord, LabTopology } from '../../src/lab/lab-topology.js';

const support = labSupport();
/** `{ skip: reason }` when labs cannot run here (not root, no namespaces), else `{}`. */
export const E2E_SKIP: { skip?: string } = support.ok ? {} : { skip: support.reason };

export const OFFLOAD_MODES = [
  { on: true, name: 'veth checksum offload on' },
  { on: false, name: 'veth checksum offload off' },
] as const;

export interface StatsRow {
  proto: string;
  addr: string;
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

export interface StatsService extends StatsRow {
  dests: StatsRow[];
}

/** Parses `ipvsadm -Ln --stats --exact`. */
export function parseStats(text: string): StatsService[] {
  const out: StatsService[] = [];
  for (const line of text.split('\n')) {
    const svc = /^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (svc) {
      out.push({ ...row(svc[1]!, svc[2]!, svc.slice(3)), dests: [] });
      continue;
    }
    const d = /^\s+->\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (d && out.length) out[out.length - 1]!.dests.push(row(out[out.length - 1]!.proto, d[1]!, d.slice(2)));
  }
  return out;
}

function row(proto: string, addr: string, nums: string[]): StatsRow {
  const [conns, inPkts, outPkts, inBytes, outBytes] = nums.map(Number) as [number, number, number, number, number];
  return { proto, addr, conns, inPkts, outPkts, inBytes, outBytes };
}

export interface ListDest {
  addr: string;
  forward: string;
  weight: number;
  active: number;
  inactive: number;
}

export interface ListService {
  proto: string;
  addr: string;
  scheduler: string;
  flags: string;
  dests: ListDest[];
}

/** Parses `ipvsadm -Ln` (add --nosort to keep the director's own order). */
export function parseList(text: string): ListService[] {
  const out: ListService[] = [];
  for (const line of text.split('\n')) {
    const svc = /^(TCP|UDP|SCTP|FWM)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (svc) {
      out.push({ proto: svc[1]!, addr: svc[2]!, scheduler: svc[3]!, flags: svc[4]!.trim(), dests: [] });
      continue;
    }
    const d = /^\s+->\s+(\S+)\s+(\S+)\s+(-?\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (d && out.length) {
      out[out.length - 1]!.dests.push({ addr: d[1]!, forward: d[2]!, weight: Number(d[3]), active: Number(d[4]), inactive: Number(d[5]) });
    }
  }
  return out;
}

export interface ConnRow {
  proto: string;
  expire: string;
  state: string;
  source: string;
  virtual: string;
  destination: string;
}

/** Parses `ipvsadm -Lnc`. */
export function parseConns(text: string): ConnRow[] {
  const out: ConnRow[] = [];
  for (const line of text.split('\n')) {
    const m = /^(TCP|UDP|SCTP|IP)\s+(\d\d:\d\d)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$/.exec(line);
    if (m) out.push({ proto: m[1]!, expire: m[2]!, state: m[3]!, source: m[4]!, virtual: m[5]!, destination: m[6]! });
  }
  return out;
}

/** Counts per server name (null = failed request) as a plain object, e.g. { rs1: 3, rs2: 3 }. */
export function countBy(names: Array<string | null>): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of names) c[n ?? 'FAILED'] = (c[n ?? 'FAILED'] ?? 0) + 1;
  return c;
}

/** Runs ipvsadm in the director namespace and fails the test (returning '') when it exits non-zero. */
export async function ipvsadmOk(t: Test, topo: LabTopology, args: string[], input?: string): Promise<string> {
  const r = await topo.ipvsadm(args, input === undefined ? {} : { input });
  if (r.code !== 0) t.fail(`ipvsadm ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Flushes the table, then loads `rules` (ipvsadm -R lines). */
export async function configure(t: Test, topo: LabTopology, rules: string[]): Promise<void> {
  await ipvsadmOk(t, topo, ['-C']);
  await ipvsadmOk(t, topo, ['-R'], `${rules.join('\n')}\n`);
}

/** Server name of a real-server address ("10.0.1.2:80" → "rs2"). */
export function nameOf(topo: LabTopology, addrPort: string): string {
  const addr = addrPort.replace(/:\d+$/, '');
  const i = topo.rsAddrs.indexOf(addr);
  return i >= 0 ? topo.rsNames[i]! : addrPort;
}

/**
 * Once a case finds that nothing gets through the director, later cases of the same
 * file fail at once with that reason instead of each waiting for curl timeouts.
 */
export class ForwardingGuard {
  private broken: string | null = null;

  /** Fails `t` and returns false when an earlier case found the director not forwarding. */
  ok(t: Test): boolean {
    if (this.broken === null) return true;
    t.fail(`not run: ${this.broken}`);
    return false;
  }

  /** Records a case's requests; when none was answered, later cases are not run. */
  check(t: Test, what: string, recs: Array<{ server: string | null }>, topo: LabTopology): void {
    if (recs.length > 0 && recs.every((r) => r.server === null)) {
      const d = topo.daemon;
      this.broken = `${what}: no request was answered through the director` +
        (d ? ` (daemon ${d.running() ? 'running' : 'NOT running'}; output: ${d.output().trim().split('\n').slice(-3).join(' | ')})` : '');
      t.fail(this.broken);
    }
  }
}

/** Source ports of successful requests ("10.0.0.1:40000" → the "10.0.0.1:40000" text as -Lnc prints it). */
export function answered(recs: CurlRecord[]): CurlRecord[] {
  return recs.filter((r) => r.server !== null);
}
