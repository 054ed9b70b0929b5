/**
 * The kernel's IPVS selftest (tools/testing/selftests/net/netfilter/ipvs.sh),
 * rebuilt for ulvs: the same three namespaces, addresses and checks, with our
 * daemon (`node bin/ulvs.js daemon`) as the director and our ipvsadm
 * (`node bin/ulvs.js ipvsadm …`) run inside the director namespace.
 *
 *   ns0 (client)                 ns1 (director)                 ns2 (real server)
 *   br0 10.0.0.2/24 ─ veth01 ─── veth10 10.0.0.1/24
 *          └──────── veth02 ─────────────────────────────────── veth20 10.0.0.3/24
 *                                veth12 172.16.0.1/24 ───────── veth21 172.16.0.2/24
 *   VIP 207.175.44.110:8080, routed by the client via 10.0.0.1; also on the director's lo
 *   (as in the selftest), which only works because the daemon hides VIP traffic from
 *   the kernel with its nftables table.
 *
 * A payload is pushed through the VIP with socat and compared byte for byte with
 * what the real server received; tcpdump captures what the director sends on both
 * sides (peers of its interfaces, filtered by its MACs) for tshark to judge.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lab, labSupport, type LabProcess } from '../../src/lab/netns.js';
import { haveTshark } from '../util/tshark.js';
import { spawnSync } from 'node:child_process';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = join(REPO, 'bin', 'ulvs.js');

function tools(): string | null {
  for (const t of ['socat', 'tcpdump', 'nft', 'ethtool']) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) return `${t} is not installed`;
  }
  if (!haveTshark()) return 'tshark is not installed';
  return null;
}

const support = labSupport();
const missing = support.ok ? tools() : null;
/** `{ skip: reason }` when the wire tests cannot run here: only when not root (or no namespaces) — and
 * outside CI, when a tool is missing (under CI a missing tool fails the test instead). */
export const WIRE_SKIP: { skip?: string } = !support.ok ? { skip: support.reason }
  : missing !== null && process.env.CI !== 'true' ? { skip: missing } : {};

/**
 * Environment for daemons started by these tests: without the test runner's NODE_OPTIONS,
 * whose preloaded modules add signal handlers of their own (and slow start-up).
 */
export const DAEMON_ENV: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };

export const ADDR = {
  vip: '207.175.44.110',
  cip: '10.0.0.2',
  gip: '10.0.0.1',
  dip: '172.16.0.1',
  rip: '172.16.0.2',
  sip: '10.0.0.3',
  port: 8080,
} as const;

export type Mode = 'nat' | 'dr' | 'tun';

export interface Selftest {
  lab: Lab;
  ns0: string;
  ns1: string;
  ns2: string;
  /** MACs of the director's interfaces. */
  mac10: string;
  mac12: string;
  dir: string;
}

async function macOf(lab: Lab, ns: string, ifname: string): Promise<string> {
  const r = await lab.ip(ns, ['-j', 'link', 'show', ifname]);
  return (JSON.parse(r.stdout) as Array<{ address: string }>)[0]!.address;
}

/**
 * Builds the selftest topology for `mode`. `txOffload`: `ethtool -K IF tx on|off` on
 * the senders (client br0/veth01/veth02, real server veth20/veth21); TSO stays off on
 * them because ulvs refuses super-frames (the daemon warns about it).
 */
export async function buildSelftest(mode: Mode, txOffload: boolean): Promise<Selftest> {
  const lab = Lab.create(`wire-${mode}`);
  const dir = mkdtempSync(join(tmpdir(), 'ulvs-wire-'));
  lab.onTeardown(() => rmSync(dir, { recursive: true, force: true }));
  const ns0 = await lab.addNs('ns0');
  const ns1 = await lab.addNs('ns1');
  const ns2 = await lab.addNs('ns2');
  await lab.veth({ ns: 'ns0', ifname: 'veth01' }, { ns: 'ns1', ifname: 'veth10', addrs: [`${ADDR.gip}/24`] });
  await lab.veth({ ns: 'ns0', ifname: 'veth02' }, { ns: 'ns2', ifname: 'veth20', addrs: [`${ADDR.sip}/24`] });
  await lab.veth({ ns: 'ns1', ifname: 'veth12', addrs: [`${ADDR.dip}/24`] }, { ns: 'ns2', ifname: 'veth21', addrs: [`${ADDR.rip}/24`] });
  await lab.bridge('ns0', 'br0', [`${ADDR.cip}/24`]);
  await lab.attach('ns0', 'veth01', 'br0');
  await lab.attach('ns0', 'veth02', 'br0');
  await lab.route('ns0', [ADDR.vip, 'via', ADDR.gip, 'dev', 'br0']);

  await lab.sysctl('ns1', 'net.ipv4.ip_forward', mode === 'tun' ? 0 : 1);
  await lab.addr('ns1', 'lo', `${ADDR.vip}/32`);

  if (mode === 'nat') {
    await lab.ip('ns2', ['link', 'del', 'veth20']);
    await lab.route('ns2', ['default', 'via', ADDR.dip, 'dev', 'veth21']);
  } else {
    // Avoid wrong ARP answers for the VIP and the reverse-path check on the real server.
    await lab.sysctl('ns2', 'net.ipv4.conf.all.arp_ignore', 1);
    await lab.sysctl('ns2', 'net.ipv4.conf.all.arp_announce', 2);
    await lab.sysctl('ns2', 'net.ipv4.conf.all.rp_filter', 0);
    await lab.sysctl('ns2', 'net.ipv4.conf.default.rp_filter', 0);
    await lab.sysctl('ns2', 'net.ipv4.conf.veth21.rp_filter', 0);
    await lab.addr('ns2', 'lo', `${ADDR.vip}/32`);
  }
  const senders: Array<[string, string]> = [['ns0', 'br0'], ['ns0', 'veth01'], ['ns2', 'veth21']];
  if (mode !== 'nat') senders.push(['ns0', 'veth02'], ['ns2', 'veth20']);
  for (const [ns, ifname] of senders) await lab.offload(ns, ifname, { tx: txOffload, tso: false });
  return { lab, ns0, ns1, ns2, mac10: await macOf(lab, 'ns1', 'veth10'), mac12: await macOf(lab, 'ns1', 'veth12'), dir };
}

/** Starts `ulvs daemon` (no options: every interface of ns1) and waits for its ready line. */
export async function startDaemon(t: Selftest, args: string[] = []): Promise<{ proc: LabProcess; ready: string }> {
  const proc = t.lab.spawn('ns1', process.execPath, [BIN, 'daemon', '--capacity', '65536', ...args], DAEMON_ENV);
  const m = await proc.waitFor(/^ulvs: director ready .*$/m, 15_000);
  return { proc, ready: m[0] };
}

/** `node bin/ulvs.js ipvsadm ARGS` inside the director namespace; rejects on a non-zero exit. */
export async function ipvsadm(t: Selftest, args: string[]): Promise<string> {
  const r = await t.lab.exec('ns1', process.execPath, [BIN, 'ipvsadm', ...args], { timeoutMs: 15_000 });
  return r.stdout;
}

export interface Capture {
  file: string;
  stop(): Promise<string>;
}

/** tcpdump -w on `ifname` in `ns` of frames from `srcMac` only; `stop()` flushes and returns the file. */
export async function capture(t: Selftest, ns: string, ifname: string, srcMac: string, name: string): Promise<Capture> {
  const file = join(t.dir, `${name}.pcap`);
  const proc = t.lab.spawn(ns, 'tcpdump', ['-i', ifname, '--immediate-mode', '-U', '-n', '-s', '0', '-w', file, 'ether', 'src', srcMac]);
  await proc.waitFor(/listening on/, 10_000);
  return {
    file,
    stop: async () => {
      await proc.stop(3000);
      return file;
    },
  };
}

export interface PushResult {
  sent: Buffer;
  received: Buffer;
  ms: number;
}

/**
 * Pushes `bytes` of random data from the client through VIP:port with socat; the real
 * server (socat -u TCP-LISTEN) writes what it receives into a file. Bounded by timeouts.
 */
export async function pushPayload(t: Selftest, bytes: number): Promise<PushResult> {
  const inFile = join(t.dir, 'in.bin');
  const outFile = join(t.dir, 'out.bin');
  const sent = randomBytes(bytes);
  writeFileSync(inFile, sent);
  rmSync(outFile, { force: true });
  const server = t.lab.spawn('ns2', 'timeout', ['20', 'socat', '-u', '-4', `TCP-LISTEN:${ADDR.port},reuseaddr`, `OPEN:${outFile},creat,trunc`]);
  // socat prints nothing when it listens: wait until the port shows up.
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await t.lab.exec('ns2', 'ss', ['-Hltn', `sport = :${ADDR.port}`], { allowFail: true });
    if (r.stdout.trim() !== '') break;
    if (Date.now() > deadline) throw new Error('socat did not start listening on the real server');
    await new Promise((r2) => setTimeout(r2, 20));
  }
  const t0 = performance.now();
  await t.lab.exec('ns0', 'timeout', ['15', 'socat', '-u', '-4', `OPEN:${inFile}`, `TCP:${ADDR.vip}:${ADDR.port}`], { timeoutMs: 20_000 });
  const done = await Promise.race([server.exited(), new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
  const ms = performance.now() - t0;
  if (done === null) await server.stop();
  const received = existsSync(outFile) && statSync(outFile).isFile() ? readFileSync(outFile) : Buffer.alloc(0);
  return { sent, received, ms };
}

/** The nftables tables of a namespace (names only). */
export async function nftTables(t: Selftest, ns: string): Promise<string[]> {
  const r = await t.lab.exec(ns, 'nft', ['list', 'tables'], { allowFail: true });
  return r.stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('table ')).map((l) => l.split(/\s+/).slice(1).join(' '));
}

// ----------------------------------------------------------------------------- the selftest check

import { dissectFile, badChecksums } from '../util/tshark.js';
import type { Test } from 'tap';

export interface CaseResult {
  mode: Mode;
  tx: boolean;
  bytes: number;
  ms: number;
}

type T = Test;

/**
 * What tshark found wrong with a frame. In an ICMP error, the quoted transport header's
 * checksum is not judged: the quote is cut at 576 bytes (as the kernel's), so tshark
 * sums a truncated segment; the ICMP and IP checksums around it are judged as usual.
 */
export function frameProblems(f: ReturnType<typeof dissectFile>[number]): string[] {
  const quoted = /:icmp:ip:(tcp|udp|sctp)/.exec(f.protocols);
  let bad = badChecksums(f);
  if (quoted !== null) bad = bad.filter((b) => !b.startsWith(`${quoted[1]}#`));
  const problems = quoted !== null && bad.length === 0 ? f.problems.filter((p) => !/^Bad checksum/.test(p)) : f.problems;
  return [...problems, ...bad];
}

const FLAG: Record<Mode, string> = { nat: '-m', dr: '-g', tun: '-i' };
const PAYLOAD = 1 << 20;

/**
 * One selftest run: topology, `ulvs daemon`, the service through our ipvsadm, the
 * payload through the VIP, captures on both sides judged by tshark, the daemon's
 * listing, and a clean SIGTERM exit that removes its nftables table.
 */
export async function selftestCase(t: T, mode: Mode, tx: boolean): Promise<CaseResult> {
  const st = await buildSelftest(mode, tx);
  t.teardown(() => st.lab.teardown());
  if (mode === 'tun') {
    const td = st.lab.spawn('ns2', process.execPath, [BIN, 'tun-decap']);
    await td.waitFor(/^ready /m, 15_000);
  }
  const d = await startDaemon(st);
  t.match(d.ready, /afpacket on veth10,veth12, nft table ulvs_\d+/, 'the daemon serves both interfaces and installed its nft table');
  const svc = `${ADDR.vip}:${ADDR.port}`;
  await ipvsadm(st, ['-A', '-t', svc, '-s', 'rr']);
  await ipvsadm(st, ['-a', '-t', svc, '-r', `${ADDR.rip}:${ADDR.port}`, FLAG[mode]]);
  const nft = await st.lab.exec('ns1', 'nft', ['list', 'ruleset']);
  t.match(nft.stdout, new RegExp(`ip daddr ${ADDR.vip.replace(/\./g, '\\.')} tcp dport ${ADDR.port} drop`), 'VIP traffic is hidden from the kernel');

  const capClient = await capture(st, 'ns0', 'veth01', st.mac10, 'client-side');
  const capServer = await capture(st, 'ns2', 'veth21', st.mac12, 'server-side');
  const r = await pushPayload(st, PAYLOAD);
  t.equal(r.received.length, r.sent.length, `${PAYLOAD} bytes arrived on the real server`);
  t.ok(r.received.equals(r.sent), 'the payload arrived byte for byte');
  const fileClient = await capClient.stop();
  const fileServer = await capServer.stop();

  const fields = ['ip.src', 'ip.dst', 'tcp.srcport', 'tcp.flags.reset'];
  for (const [side, file] of [['client side', fileClient], ['server side', fileServer]] as const) {
    // The payload is random bytes on port 8080, which tshark would dissect as HTTP and flag
    // (and, now and then, its Thrift heuristic claims a segment and flags a "varint too large").
    const frames = dissectFile(file, fields, ['--disable-protocol', 'http', '--disable-protocol', 'thrift']);
    const bad = frames.map((f) => ({ f, why: frameProblems(f) })).filter((x) => x.why.length > 0)
      .map(({ f, why }) => `#${f.n} ${f.protocols}: ${why.join(', ')}`);
    t.same(bad, [], `${side}: no bad checksum and no malformed frame among the ${frames.length} frames the director sent`);
    if (side === 'server side') {
      const toServer = frames.filter((f) => f.protocols.includes('tcp'));
      // (tcpdump may miss some under load: the exact count is checked with ipvsadm --stats below.)
      t.ok(toServer.length > 100, `server side: the director forwarded ${toServer.length} TCP frames`);
      if (mode === 'tun') {
        t.ok(toServer.every((f) => f.protocols.includes('ip:ip')), 'server side: every TCP frame is IPIP-encapsulated');
        t.same([...new Set(toServer.map((f) => `${f.all('ip.src')[0]} > ${f.all('ip.dst')[0]}`))], [`${ADDR.dip} > ${ADDR.rip}`],
          'outer header from the egress interface\'s address to the real server');
      }
    } else if (mode === 'nat') {
      const replies = frames.filter((f) => f.protocols.includes('tcp'));
      t.ok(replies.length > 0, `client side: ${replies.length} NAT replies`);
      t.same(replies.filter((f) => f.one('ip.src') !== ADDR.vip || f.one('tcp.srcport') !== String(ADDR.port)).map((f) => f.n), [],
        'client side: every reply comes from VIP:port (the kernel forwarded no raw reply)');
    }
    const resets = frames.filter((f) => f.one('tcp.flags.reset') === '1' || f.one('tcp.flags.reset') === 'True');
    t.same(resets.map((f) => f.n), [], `${side}: no RST from the director (the kernel left the VIP alone)`);
  }

  const stats = await ipvsadm(st, ['-Ln', '--stats', '--exact']);
  const row = new RegExp(`->\\s+${ADDR.rip.replace(/\./g, '\\.')}:${ADDR.port}\\s+1\\s+(\\d+)\\s+(\\d+)\\s+(\\d+)`).exec(stats);
  t.ok(row !== null && Number(row[1]) > PAYLOAD / 1500 && Number(row[3]) > PAYLOAD, `ipvsadm --stats counts the connection: ${row?.[0] ?? stats}`);
  if (row !== null && mode === 'nat') t.ok(Number(row[2]) > 0, 'NAT replies are counted as OutPkts');

  d.proc.child.kill('SIGTERM');
  const ex = await Promise.race([d.proc.exited(), new Promise<null>((res) => setTimeout(() => res(null), 10_000))]);
  t.same(ex, { code: 0, signal: null }, 'the daemon exits 0 on SIGTERM');
  t.match(d.proc.output(), /director stopped \(SIGTERM\)/);
  t.same((await nftTables(st, 'ns1')).filter((n) => n.includes('ulvs_')), [], 'its nftables table is gone');
  return { mode, tx, bytes: PAYLOAD, ms: r.ms };
}
