/**
 * `ulvs replay` — the director, offline (pinned interface, see README):
 *   ulvs replay --rules RULES --in IN.pcap --out OUT.pcap [--mac MAC] [--ip IPV4]
 *               [--neigh IP=MAC]... [--gw MAC] [--set TCP TCPFIN UDP] [--seed N]
 *               [--list] [--stats] [--conns] [--trace FILE]
 * Every frame of IN goes through the engine on a virtual clock set to the frame's
 * timestamp; every frame the director sends is written to OUT with that timestamp.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseCapture, PcapWriter, PcapError, LINKTYPE_ETHERNET, type Capture } from '../io/pcap-file.js';
import { FrameBatch, TxQueue, V_FORWARD, V_REPLY, VERDICT_NAMES } from '../io/batch.js';
import { parseMac } from '../util/mac.js';
import { parseIp, parseIp4, formatIp } from '../util/ip.js';
import { StaticNeighbours } from '../neigh/static.js';
import type { Director as DirectorT } from '../core/director.js';

interface ReplayArgs {
  rules: string;
  in: string;
  out: string;
  mac: string;
  ip: string;
  neigh: string[];
  gw: string | null;
  set: [number, number, number] | null;
  seed: number;
  list: boolean;
  stats: boolean;
  conns: boolean;
  trace: string | null;
}

class UsageError extends Error {}
/** --help: not an error. */
class HelpRequest extends Error {}

const USAGE = 'usage: ulvs replay --rules RULES --in IN.pcap --out OUT.pcap [--mac MAC] [--ip IPV4] ' +
  '[--neigh IP=MAC]... [--gw MAC] [--set TCP TCPFIN UDP] [--seed N] [--list] [--stats] [--conns] [--trace FILE]';

function parseArgs(argv: string[]): ReplayArgs {
  const a: ReplayArgs = {
    rules: '', in: '', out: '', mac: '02:00:00:00:00:01', ip: '192.0.2.1', neigh: [], gw: null, set: null, seed: 1,
    list: false, stats: false, conns: false, trace: null,
  };
  const need = (i: number, opt: string): string => {
    const v = argv[i];
    if (v === undefined) throw new UsageError(`option ${opt} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const o = argv[i]!;
    const eq = o.indexOf('=');
    const name = o.startsWith('--') && eq > 0 ? o.slice(0, eq) : o;
    const inline = o.startsWith('--') && eq > 0 ? o.slice(eq + 1) : undefined;
    const val = (): string => inline ?? need(++i, name);
    switch (name) {
      case '--rules': a.rules = val(); break;
      case '--in': a.in = val(); break;
      case '--out': a.out = val(); break;
      case '--mac': a.mac = val(); break;
      case '--ip': a.ip = val(); break;
      case '--neigh': a.neigh.push(val()); break;
      case '--gw': a.gw = val(); break;
      case '--seed': {
        const s = val();
        if (!/^\d+$/.test(s)) throw new UsageError(`bad --seed value '${s}'`);
        a.seed = Number(s);
        break;
      }
      case '--set': {
        const v = [need(++i, name), need(++i, name), need(++i, name)].map((x) => {
          if (!/^\d+$/.test(x)) throw new UsageError(`bad --set value '${x}'`);
          return Number(x);
        });
        a.set = [v[0]!, v[1]!, v[2]!];
        break;
      }
      case '--list': a.list = true; break;
      case '--stats': a.stats = true; break;
      case '--conns': a.conns = true; break;
      case '--trace': a.trace = val(); break;
      case '-h': case '--help': throw new HelpRequest();
      default: throw new UsageError(`unknown option '${o}'`);
    }
  }
  if (!a.rules || !a.in || !a.out) throw new UsageError('--rules, --in and --out are required');
  return a;
}

export async function replayMain(argv: string[]): Promise<number> {
  let args: ReplayArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (e instanceof HelpRequest) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (e instanceof UsageError) {
      // One line, like every other replay error; the usage is one --help away.
      process.stderr.write(`ulvs replay: ${e.message} (see 'ulvs replay --help')\n`);
      return 2;
    }
    throw e;
  }
  const fail = (msg: string): number => {
    process.stderr.write(`ulvs replay: ${msg}\n`);
    return 1;
  };

  const mac = parseMac(args.mac);
  if (mac === null) return fail(`bad --mac '${args.mac}'`);
  const ip = parseIp4(args.ip);
  if (ip === null) return fail(`bad --ip '${args.ip}'`);
  const neigh = new StaticNeighbours();
  for (const n of args.neigh) {
    const eq = n.indexOf('=');
    const addr = eq > 0 ? parseIp(n.slice(0, eq)) : null;
    const m = eq > 0 ? parseMac(n.slice(eq + 1)) : null;
    if (addr === null || m === null) return fail(`bad --neigh '${n}' (expected IP=MAC)`);
    neigh.set(addr, m);
  }
  if (args.gw !== null) {
    const g = parseMac(args.gw);
    if (g === null) return fail(`bad --gw '${args.gw}'`);
    neigh.setGateway(g);
  }

  let rulesText: string;
  try {
    rulesText = readFileSync(args.rules, 'utf8');
  } catch (e) {
    return fail(`cannot read rules ${args.rules}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let capture: Capture;
  try {
    const bytes = readFileSync(args.in);
    capture = parseCapture(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    if (e instanceof PcapError) return fail(`${args.in}: ${e.message}`);
    return fail(`cannot read ${args.in}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (capture.linkType !== LINKTYPE_ETHERNET) return fail(`${args.in}: link type ${capture.linkType} is not Ethernet`);

  // A frame creates at most one connection and one template, so the capture bounds the table
  // (x4: IPv6 entries get a quarter of it); small replays then start without a 1M-entry table.
  const capacity = Math.min(1 << 20, Math.max(4096, 4 * capture.frames.length));
  // The director and the ipvsadm front end load only once the arguments and inputs are known good,
  // so a usage error answers without loading the engine.
  const [{ Director }, { reasonName }, { runIpvsadm }, { numericResolver }] = await Promise.all([
    import('../core/director.js'), import('../core/reasons.js'), import('./ipvsadm/run.js'), import('./ipvsadm/resolver.js'),
  ]);
  const director: DirectorT = new Director({ mac, ip4: ip, neigh, seed: args.seed, arpForOwnIp: true, capacity });
  const firstTs = capture.frames.length > 0 ? capture.frames[0]!.tsUs / 1e6 : 0;
  director.setClock(firstTs);

  // Rules go through the ipvsadm restore path, so a save file behaves exactly as under `ulvsadm -R`.
  const errors: string[] = [];
  let lineNo = 0;
  const status = await runIpvsadm('ulvsadm', ['-R'], {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => errors.push(s),
    readStdin: async () => rulesText,
    onLine: (n: number) => { lineNo = n; },
  }, director.api, numericResolver);
  if (status !== 0 || errors.length > 0) {
    const msg = errors.join('').trim().split('\n')[0] ?? 'error';
    return fail(`${args.rules}:${lineNo}: ${msg}`);
  }
  if (args.set !== null) {
    try {
      await director.api.setTimeouts({ tcp: args.set[0], tcpFin: args.set[1], udp: args.set[2] });
    } catch (e) {
      return fail(`bad --set ${args.set.join(' ')}: ${(e as Error).message}`);
    }
  }

  const out = new PcapWriter();
  const traceLines: string[] | null = args.trace !== null ? [] : null;
  const batch = new FrameBatch(1);
  const tx = new TxQueue(8);
  const engine = director.engine;
  let lastTs = firstTs;
  let frameNo = 0;
  let traceDest = '';
  let traceNew = false;
  let traceSched = '';
  if (traceLines !== null) {
    engine.trace = (_i, _verdict, _reason, o) => {
      traceNew = o.isNew;
      traceDest = '';
      traceSched = '';
      if (o.destId >= 0) {
        const d = director.table.destById(o.destId);
        if (d !== undefined) traceDest = d.addr.af === 6 ? `[${formatIp(d.addr)}]:${d.port}` : `${formatIp(d.addr)}:${d.port}`;
      }
      if (o.svcId >= 0) {
        const s = director.table.serviceById(o.svcId);
        if (s !== undefined) traceSched = s.schedName;
      }
    };
  }
  for (const f of capture.frames) {
    frameNo++;
    const now = f.tsUs / 1e6;
    if (now > lastTs) lastTs = now;
    director.tick(lastTs);
    tx.clear();
    if (!batch.put(0, f.data, 0, 0, f.tsUs)) {
      // Larger than any slot: dropped and counted under its own reason, like a malformed frame.
      const reason = director.countOversize();
      traceLines?.push(JSON.stringify({ frame: frameNo, verdict: 'drop', reason: reasonName(reason), dest: null, sched: null, new: false }));
      continue;
    }
    batch.count = 1;
    engine.process(batch, tx);
    const v = batch.verdict[0]!;
    if (v === V_FORWARD || v === V_REPLY) out.write(f.tsUs, batch.buf, batch.off[0]!, batch.len[0]!);
    for (let k = 0; k < tx.count; k++) out.write(f.tsUs, tx.buf, tx.off[k]!, tx.len[k]!);
    if (traceLines !== null) {
      traceLines.push(JSON.stringify({
        frame: frameNo, verdict: VERDICT_NAMES[v], reason: reasonName(batch.reason[0]!),
        dest: traceDest || null, sched: traceSched || null, new: traceNew,
      }));
    }
  }
  try {
    out.save(args.out);
    if (traceLines !== null) writeFileSync(args.trace!, traceLines.join('\n') + (traceLines.length ? '\n' : ''));
  } catch (e) {
    return fail(`cannot write output: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }

  const listing = async (extra: string[]): Promise<void> => {
    await runIpvsadm('ipvsadm', extra, {
      stdout: (s) => process.stdout.write(s),
      stderr: (s) => process.stderr.write(s),
      readStdin: async () => '',
    }, director.api, numericResolver);
  };
  if (args.list) await listing(['-L', '-n']);
  if (args.stats) await listing(['-L', '-n', '--stats', '--exact']);
  if (args.conns) await listing(['-L', '-n', '-c']);
  return 0;
}
