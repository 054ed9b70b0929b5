/**
 * ipvsadm 1.31's command line: parse_options() and the checks of
 * process_options(), up to (not including) the kernel call. The result is a
 * command ready to run against IpvsApi, or an "exit" (a message, its stream,
 * the exit status, and whether ipvsadm would have exit()ed on the spot).
 *
 * The order of everything matters because the first problem found is the one
 * reported: option values are checked while popt walks the words (so a bad
 * value before an unknown option wins), then popt's own error, then --set's
 * values and stray words, then -b's flags, then the command/option table, then
 * the per-command checks.
 */
import type { DestSpec, ServiceKey, ServiceSpec, SyncDaemon, Timeouts } from '../../ctl/types.js';
import type { MarkRule } from '../../ctl/api.js';
import {
  FWD_DROUTE, FWD_MASQ, FWD_TUNNEL, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
  SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3, SVC_F_SCHED_MASK,
  DEFAULT_PERSISTENT_TIMEOUT,
} from '../../svc/types.js';
import { Popt } from './popt.js';
import {
  OPT, OPT_NAMES, NUMBER_OF_OPT, POPT_TABLE, TUN_NAMES, TUN_OPT_COLUMNS, TUN_ROWS, legality,
  type CommandName,
} from './options.js';
import { cAtoi, cStrtol, inetAton, inetPton4, inetPton6, ntop4, ntop6, stringToNumber, type Words6 } from './libc.js';
import type { Resolver, ServProto } from './resolver.js';
import { usageText, tryHelpText, VERSION_TEXT } from './help.js';
import { parseMarkRuleArgs } from './marks.js';

/** 31 days: the largest persistence timeout and --set value ipvsadm accepts. */
export const MAX_TIMEOUT = 86400 * 31;
export const DEF_SCHED = 'wlc';
export const DEF_MCAST_IFN = 'eth0';

/** Listing options (ipvsadm's FMT_* bits plus ulvs's --json). */
export interface ListFormat {
  numeric: boolean;
  stats: boolean;
  rate: boolean;
  thresholds: boolean;
  persistentConn: boolean;
  nosort: boolean;
  exact: boolean;
  tunInfo: boolean;
  json: boolean;
}

export function defaultFormat(): ListFormat {
  return {
    numeric: false, stats: false, rate: false, thresholds: false, persistentConn: false,
    nosort: false, exact: false, tunInfo: false, json: false,
  };
}

export type ListTarget = 'all' | 'service' | 'connections' | 'timeout' | 'daemon' | 'mark-rules';

export type ParsedCommand =
  | { cmd: 'add-service' | 'edit-service' | 'delete-service'; svc: ServiceSpec }
  | { cmd: 'flush' }
  | { cmd: 'list'; target: ListTarget; svc: ServiceKey | null; format: ListFormat }
  | { cmd: 'add-server' | 'edit-server' | 'delete-server'; svc: ServiceSpec; dest: DestSpec }
  | { cmd: 'set'; timeouts: Timeouts }
  | { cmd: 'start-daemon' | 'stop-daemon'; daemon: SyncDaemon }
  | { cmd: 'restore' }
  | { cmd: 'save'; format: ListFormat }
  /** svc null: zero every service and the totals. */
  | { cmd: 'zero'; svc: ServiceKey | null }
  | { cmd: 'add-mark-rule' | 'del-mark-rule'; rule: MarkRule };

/** What ipvsadm would print before stopping (or, when !fatal, before returning -1 from process_options). */
export interface ParseExit {
  message: string;
  stream: 'stdout' | 'stderr';
  exit: number;
  /** true: ipvsadm exit()s (ends a -R run too); false: popt error, -R goes on with the next line. */
  fatal: boolean;
}

export type ParseResult = { ok: true; command: ParsedCommand } | { ok: false; exit: ParseExit };

export interface ParseContext {
  /** argv[0] as invoked: used in the -h text and the "Try ..." hint. */
  program: string;
  resolver: Resolver;
}

class Fail extends Error {
  constructor(readonly exit: ParseExit) {
    super(exit.message);
  }
}

/** ipvsadm's fail(2, ...): the message and a newline on stderr, exit 2. */
function fail(message: string): never {
  throw new Fail({ message: message + '\n', stream: 'stderr', exit: 2, fatal: true });
}

const SERVICE_NONE = 0;
const SERVICE_ADDR = 1;
const SERVICE_PORT = 2;

/** The address part of ipvs_service_t that parse_service() writes. */
interface AddrState {
  af: 0 | 4 | 6;
  protocol: number;
  /** Host-order words; IPv4 in w[0]. */
  addr: Words6;
  port: number;
  /** IPv4: mask as host-order uint32; IPv6: prefix length. */
  netmask: number;
}

interface SvcState extends AddrState {
  fwmark: number;
  schedName: string;
  flags: number;
  timeout: number;
  pe: string;
}

interface DestState {
  af: 0 | 4 | 6;
  addr: Words6;
  port: number;
  fwd: number;
  weight: number;
  u: number;
  l: number;
  tunType: number;
  tunPort: number;
  tunFlags: number;
}

interface DaemonState {
  state: 'master' | 'backup';
  ifn: string;
  syncId: number;
  maxlen: number;
  group: string;
  port: number;
  ttl: number;
}

function protoName(proto: number): ServProto | null {
  if (proto === PROTO_TCP) return 'tcp';
  if (proto === PROTO_UDP) return 'udp';
  if (proto === PROTO_SCTP) return 'sctp';
  return null;
}

/** str_is_digit(): true for "" too. */
function isAllDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s[i]! < '0' || s[i]! > '9') return false;
  return true;
}

/** host_to_addr(): gethostbyname, IPv4 only. */
async function hostToAddr(name: string, resolver: Resolver): Promise<number | null> {
  return resolver.hostToAddr4(name);
}

/**
 * parse_service(): `host[:port]`, `[ipv6]:port` or a bare IPv6 address. Returns
 * SERVICE_ADDR|SERVICE_PORT bits and writes af/addr/port (and netmask 128 for IPv6).
 */
export async function parseService(buf: string, t: AddrState, resolver: Resolver): Promise<number> {
  if (isAllDigits(buf)) return SERVICE_NONE;
  let host = buf;
  let portText: string | null = null;
  if (host[0] === '[') {
    host = host.slice(1);
    const close = host.indexOf(']');
    if (close < 0) return SERVICE_NONE;
    const after = host.slice(close + 1);
    host = host.slice(0, close);
    if (after[0] !== ':') return SERVICE_NONE;
    portText = after.slice(1);
  }
  const v6 = inetPton6(host);
  if (v6 !== null) {
    t.addr = v6;
    t.af = 6;
    t.netmask = 128;
  } else {
    // Not IPv6: the port is whatever follows the last ':' of the host part; a port
    // written after "[v4]" is forgotten here, exactly like ipvsadm's strrchr.
    const colon = host.lastIndexOf(':');
    portText = colon >= 0 ? host.slice(colon + 1) : null;
    if (colon >= 0) host = host.slice(0, colon);
    let v4 = inetAton(host);
    if (v4 === null) v4 = await hostToAddr(host, resolver);
    if (v4 === null) return SERVICE_NONE;
    t.addr = [v4, 0, 0, 0];
    t.af = 4;
  }
  let result = SERVICE_ADDR;
  if (portText !== null) {
    result |= SERVICE_PORT;
    let port = stringToNumber(portText, 0, 65535);
    if (port === -1) {
      const proto = protoName(t.protocol);
      const named = proto === null ? null : await resolver.serviceToPort(portText, proto);
      if (named === null) return SERVICE_NONE;
      port = named;
    }
    t.port = port;
  }
  return result;
}

/** parse_netmask(): any inet_aton text or a host name. */
async function parseNetmask(buf: string, resolver: Resolver): Promise<number | null> {
  const a = inetAton(buf);
  if (a !== null) return a;
  return hostToAddr(buf, resolver);
}

/** parse_timeout(): no value means the default persistence timeout. */
function parseTimeout(buf: string | null, min: number, max: number): number {
  if (buf === null) return DEFAULT_PERSISTENT_TIMEOUT;
  const n = stringToNumber(buf, min, max);
  if (n === -1) fail(`invalid timeout value \`${buf}' specified`);
  return n;
}

/** parse_fwmark(): strtol into an unsigned long, 1..UINT_MAX. */
export function parseFwmarkValue(buf: string): number | null {
  const r = cStrtol(buf, 10);
  if (r.end === 0 || r.end !== buf.length || r.overflow) return null;
  const l = BigInt.asUintN(64, r.value);
  if (l === 0n || l > 0xffffffffn) return null;
  return Number(l);
}

/** parse_sched_flags(): strtok over ',' (empty items vanish); sh-* and mh-* flags need that scheduler. */
function parseSchedFlags(sched: string, arg: string): number {
  const s = sched.length > 0 ? sched : DEF_SCHED;
  const items = arg.split(',').filter((x) => x.length > 0);
  // ipvsadm 1.31 dereferences strtok's NULL for a value made only of commas (it crashes);
  // we report that value as an invalid flag instead.
  if (items.length === 0) fail(`invalid scheduler flag \`${arg}'`);
  let flags = 0;
  for (const f of items) {
    switch (f) {
      case 'flag-1': flags |= SVC_F_SCHED1; break;
      case 'flag-2': flags |= SVC_F_SCHED2; break;
      case 'flag-3': flags |= SVC_F_SCHED3; break;
      case 'sh-fallback':
      case 'sh-port':
        flags |= f === 'sh-fallback' ? SVC_F_SCHED1 : SVC_F_SCHED2;
        if (s !== 'sh') fail(`incompatible scheduler flag \`${f}'`);
        break;
      case 'mh-fallback':
      case 'mh-port':
        flags |= f === 'mh-fallback' ? SVC_F_SCHED1 : SVC_F_SCHED2;
        if (s !== 'mh') fail(`incompatible scheduler flag \`${f}'`);
        break;
      default:
        fail(`invalid scheduler flag \`${f}'`);
    }
  }
  return flags;
}

function parseTunType(s: string): number {
  const i = (TUN_NAMES as readonly string[]).indexOf(s);
  return i;
}

/** generic_opt_check(): walk the columns in order; first violation wins. */
function genericOptCheck(cmd: CommandName, options: ReadonlySet<number>): void {
  let last = 0;
  let count = 0;
  for (let j = 0; j < NUMBER_OF_OPT; j++) {
    const rule = legality(cmd, j);
    if (!options.has(j)) {
      if (rule === '+') fail(`You need to supply the '${OPT_NAMES[j]}' option for the '${cmd}' command`);
    } else {
      if (rule === 'x') fail(`Illegal '${OPT_NAMES[j]}' option with the '${cmd}' command`);
      if (rule === '1') {
        count++;
        if (count === 1) {
          last = j;
          continue;
        }
        fail(`The option '${OPT_NAMES[j]}' conflicts with the '${OPT_NAMES[last]}' option in the '${cmd}' command`);
      }
    }
  }
}

/** tunnel_opt_check(): the same walk over the tunnel columns for the effective tunnel type. */
function tunnelOptCheck(tunType: number, options: ReadonlySet<number>): void {
  const row = TUN_ROWS[tunType]!;
  const tname = TUN_NAMES[tunType]!;
  let last = 0;
  let count = 0;
  for (let j = 0; j < TUN_OPT_COLUMNS.length; j++) {
    const k = TUN_OPT_COLUMNS[j]!;
    const rule = row[j]!;
    if (!options.has(k)) {
      if (rule === '+') fail(`You need to supply the '${OPT_NAMES[k]}' option for the '${tname}' tunnel type`);
    } else {
      if (rule === 'x') fail(`Illegal '${OPT_NAMES[k]}' option with the '${tname}' tunnel type`);
      if (rule === '1') {
        count++;
        if (count === 1) {
          last = k;
          continue;
        }
        fail(`The option '${OPT_NAMES[k]}' conflicts with the '${OPT_NAMES[last]}' option in the '${tname}' tunnel type`);
      }
    }
  }
}

const FIRST_COMMANDS: Readonly<Record<string, CommandName>> = {
  A: 'add-service', E: 'edit-service', D: 'delete-service', a: 'add-server', e: 'edit-server',
  d: 'delete-server', C: 'flush', L: 'list', l: 'list', Z: 'zero', set: 'set', R: 'restore',
  S: 'save', 'start-daemon': 'start-daemon', 'stop-daemon': 'stop-daemon',
  'add-mark-rule': 'add-mark-rule', 'del-mark-rule': 'del-mark-rule',
};

function addrText(af: 0 | 4 | 6, w: Words6): string {
  return af === 6 ? ntop6(w) : ntop4(w[0]);
}

function isZeroAddr(w: Words6): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0 && w[3] === 0;
}

function serviceSpecOf(svc: SvcState): ServiceSpec {
  const af: 4 | 6 = svc.af === 6 ? 6 : 4;
  return {
    af,
    // Fwmark services carry no protocol in the records (ipvsadm sends TCP, the kernel ignores it).
    protocol: svc.fwmark !== 0 ? 0 : svc.protocol,
    addr: addrText(af, svc.addr),
    port: svc.port,
    fwmark: svc.fwmark,
    schedName: svc.schedName,
    flags: svc.flags,
    timeout: svc.timeout,
    netmask: af === 6 ? String(svc.netmask >>> 0) : ntop4(svc.netmask),
    pe: svc.pe,
  };
}

function serviceKeyOf(svc: SvcState): ServiceKey {
  const s = serviceSpecOf(svc);
  return { af: s.af, protocol: s.protocol, addr: s.addr, port: s.port, fwmark: s.fwmark };
}

/**
 * Parses one ipvsadm command line (`argv` without argv[0]). Host and service
 * names are resolved through `ctx.resolver` as ipvsadm would resolve them.
 */
export async function parseIpvsadmArgs(argv: readonly string[], ctx: ParseContext): Promise<ParseResult> {
  try {
    return { ok: true, command: await parseOrThrow(argv, ctx) };
  } catch (e) {
    if (e instanceof Fail) return { ok: false, exit: e.exit };
    throw e;
  }
}

async function parseOrThrow(argv: readonly string[], ctx: ParseContext): Promise<ParsedCommand> {
  const tryHelp = (): never => {
    throw new Fail({ message: tryHelpText(ctx.program), stream: 'stderr', exit: 255, fatal: true });
  };
  const popt = new Popt([ctx.program, ...argv], POPT_TABLE);
  const options = new Set<number>();
  const format = defaultFormat();
  const svc: SvcState = {
    af: 0, protocol: 0, addr: [0, 0, 0, 0], port: 0, fwmark: 0, schedName: '', flags: 0,
    timeout: 0, netmask: 0xffffffff, pe: '',
  };
  const dest: DestState = {
    af: 0, addr: [0, 0, 0, 0], port: 0, fwd: FWD_DROUTE, weight: 1, u: 0, l: 0,
    tunType: 0, tunPort: 0, tunFlags: 0,
  };
  const daemon: DaemonState = { state: 'master', ifn: '', syncId: 0, maxlen: 0, group: '', port: 0, ttl: 0 };
  let schedFlagsArg = '';

  const setOption = (col: number): void => {
    if (options.has(col)) fail(`multiple '${OPT_NAMES[col]}' options specified`);
    options.add(col);
  };

  // The first option must be a command.
  const first = popt.getNextOpt();
  if (first.kind !== 'option') return tryHelp();
  if (first.val === 'h') {
    throw new Fail({ message: usageText(ctx.program), stream: 'stdout', exit: 0, fatal: true });
  }
  if (first.val === 'v') {
    throw new Fail({ message: VERSION_TEXT, stream: 'stdout', exit: 0, fatal: true });
  }
  const cmd = FIRST_COMMANDS[first.val];
  if (cmd === undefined) return tryHelp();
  if (cmd === 'start-daemon' || cmd === 'stop-daemon') {
    const v = first.arg ?? '';
    if (v === 'master' || v === 'backup') daemon.state = v;
    else if (cmd === 'start-daemon') fail('illegal start-daemon parameter specified');
    else fail('illegal start_daemon specified');
  }

  let step = popt.getNextOpt();
  for (; step.kind === 'option'; step = popt.getNextOpt()) {
    const arg = step.arg;
    const value = arg ?? '';
    switch (step.val) {
      case 't':
      case 'u':
      case 'sctp-service': {
        setOption(OPT.SERVICE);
        svc.protocol = step.val === 't' ? PROTO_TCP : step.val === 'u' ? PROTO_UDP : PROTO_SCTP;
        const parse = await parseService(value, svc, ctx.resolver);
        if (!(parse & SERVICE_ADDR)) fail('illegal virtual server address[:port] specified');
        break;
      }
      case 'f': {
        setOption(OPT.SERVICE);
        svc.af = 4;
        svc.protocol = PROTO_TCP;
        const mark = parseFwmarkValue(value);
        if (mark === null) fail(`invalid fwmark value \`${value}' specified`);
        svc.fwmark = mark;
        break;
      }
      case 's':
        setOption(OPT.SCHEDULER);
        svc.schedName = value.slice(0, 15);
        break;
      case 'p':
        setOption(OPT.PERSISTENT);
        svc.flags |= SVC_F_PERSISTENT;
        svc.timeout = parseTimeout(arg, 1, MAX_TIMEOUT);
        break;
      case 'M':
        setOption(OPT.NETMASK);
        if (svc.af !== 6) {
          const m = await parseNetmask(value, ctx.resolver);
          if (m === null) fail('illegal virtual server persistent mask specified');
          svc.netmask = m;
        } else {
          // atoi() into an unsigned field: negative and junk values fall outside 1..128.
          svc.netmask = cAtoi(value) >>> 0;
          if (svc.netmask < 1 || svc.netmask > 128) fail('illegal ipv6 netmask specified');
        }
        break;
      case 'r': {
        setOption(OPT.SERVER);
        const t: AddrState = { af: svc.af, protocol: svc.protocol, addr: svc.addr, port: svc.port, netmask: svc.netmask };
        const parse = await parseService(value, t, ctx.resolver);
        dest.af = t.af;
        dest.addr = t.addr;
        dest.port = t.port;
        if (!(parse & SERVICE_ADDR)) fail('illegal real server address[:port] specified');
        if (parse === SERVICE_ADDR) dest.port = svc.port;
        break;
      }
      case 'i':
        setOption(OPT.FORWARD);
        dest.fwd = FWD_TUNNEL;
        break;
      case 'g':
        setOption(OPT.FORWARD);
        dest.fwd = FWD_DROUTE;
        break;
      case 'm':
        setOption(OPT.FORWARD);
        dest.fwd = FWD_MASQ;
        break;
      case 'w':
        setOption(OPT.WEIGHT);
        dest.weight = stringToNumber(value, 0, 65535);
        if (dest.weight === -1) fail('illegal weight specified');
        break;
      case 'x':
        setOption(OPT.UTHRESHOLD);
        dest.u = stringToNumber(value, 0, 2147483647);
        if (dest.u === -1) fail('illegal u_threshold specified');
        break;
      case 'y':
        setOption(OPT.LTHRESHOLD);
        dest.l = stringToNumber(value, 0, 2147483647);
        if (dest.l === -1) fail('illegal l_threshold specified');
        break;
      case 'c':
        setOption(OPT.CONNECTION);
        break;
      case 'n':
        setOption(OPT.NUMERIC);
        format.numeric = true;
        break;
      case 'mcast-interface':
        setOption(OPT.MCAST);
        daemon.ifn = value.slice(0, 15);
        break;
      case 'syncid':
        setOption(OPT.SYNCID);
        daemon.syncId = stringToNumber(value, 0, 255);
        if (daemon.syncId === -1) fail('illegal syncid specified');
        break;
      case 'timeout':
        setOption(OPT.TIMEOUT);
        break;
      case 'daemon':
        setOption(OPT.DAEMON);
        break;
      case 'stats':
        setOption(OPT.STATS);
        format.stats = true;
        break;
      case 'rate':
        setOption(OPT.RATE);
        format.rate = true;
        break;
      case 'thresholds':
        setOption(OPT.THRESHOLDS);
        format.thresholds = true;
        break;
      case 'persistent-conn':
        setOption(OPT.PERSISTENTCONN);
        format.persistentConn = true;
        break;
      case 'nosort':
        setOption(OPT.NOSORT);
        format.nosort = true;
        break;
      case 'sort':
        // Sorting is the default; --sort is accepted anywhere for compatibility.
        break;
      case 'X':
        setOption(OPT.EXACT);
        format.exact = true;
        break;
      case '6':
        if (svc.fwmark !== 0) {
          svc.af = 6;
          svc.netmask = 128;
        } else {
          // ipvsadm's message already ends in "\n", and fail() adds another.
          fail('-6 used before -f\n');
        }
        break;
      case 'o':
        setOption(OPT.ONEPACKET);
        svc.flags |= SVC_F_ONEPACKET;
        break;
      case 'pe':
        setOption(OPT.PE);
        svc.pe = value.slice(0, 16);
        break;
      case 'b':
        setOption(OPT.SCHED_FLAGS);
        schedFlagsArg = value.slice(0, 127);
        break;
      case 'mcast-group':
        setOption(OPT.MCAST_GROUP);
        if (value.includes(':')) {
          const g = inetPton6(value);
          if (g === null || (g[0] >>> 24) !== 0xff) fail(`invalid IPv6 mcast-group \`${value}'`);
          daemon.group = ntop6(g);
        } else {
          const g = inetPton4(value);
          if (g === null || (g >>> 28) !== 0xe) fail(`invalid IPv4 mcast-group \`${value}'`);
          daemon.group = ntop4(g);
        }
        break;
      case 'mcast-port':
        setOption(OPT.MCAST_PORT);
        daemon.port = stringToNumber(value, 1, 65535);
        if (daemon.port === -1) fail('illegal mcast-port specified');
        break;
      case 'mcast-ttl':
        setOption(OPT.MCAST_TTL);
        daemon.ttl = stringToNumber(value, 1, 255);
        if (daemon.ttl === -1) fail('illegal mcast-ttl specified');
        break;
      case 'sync-maxlen':
        setOption(OPT.SYNC_MAXLEN);
        daemon.maxlen = stringToNumber(value, 1, 65535 - 20 - 8);
        if (daemon.maxlen === -1) fail('illegal sync-maxlen specified');
        break;
      case 'tun-info':
        setOption(OPT.TUN_INFO);
        format.tunInfo = true;
        break;
      case 'tun-type': {
        setOption(OPT.TUN_TYPE);
        const tt = parseTunType(value);
        if (tt === -1) fail('illegal tunnel type specified');
        dest.tunType = tt;
        break;
      }
      case 'tun-port':
        setOption(OPT.TUN_PORT);
        dest.tunPort = stringToNumber(value, 1, 65535);
        if (dest.tunPort === -1) fail('illegal tunnel port specified');
        break;
      case 'tun-nocsum':
        setOption(OPT.TUN_NOCSUM);
        break;
      case 'tun-csum':
        setOption(OPT.TUN_CSUM);
        dest.tunFlags |= 1;
        break;
      case 'tun-remcsum':
        setOption(OPT.TUN_REMCSUM);
        dest.tunFlags |= 2;
        break;
      case 'json':
        setOption(OPT.JSON);
        format.json = true;
        break;
      case 'mark-rules':
        setOption(OPT.MARK_RULES);
        break;
      default:
        // A command (or -h/-v) after the first option.
        fail(`invalid option \`${popt.badOption()}'`);
    }
  }

  if (step.kind === 'error') {
    throw new Fail({ message: `${popt.badOption()}: ${step.error}\n`, stream: 'stderr', exit: 255, fatal: false });
  }

  const timeouts: Timeouts = { tcp: 0, tcpFin: 0, udp: 0 };
  if (cmd === 'set') {
    const a = popt.getArg();
    const b = a === null ? null : popt.getArg();
    const c = b === null ? null : popt.getArg();
    if (a === null || b === null || c === null) fail('--set option requires 3 timeout values');
    timeouts.tcp = parseTimeout(a, 0, MAX_TIMEOUT);
    timeouts.tcpFin = parseTimeout(b, 0, MAX_TIMEOUT);
    timeouts.udp = parseTimeout(c, 0, MAX_TIMEOUT);
  }
  let rule: MarkRule | null = null;
  if (cmd === 'add-mark-rule' || cmd === 'del-mark-rule') {
    const words: string[] = [];
    for (let k = 0; k < 4; k++) {
      const w = popt.getArg();
      if (w === null) break;
      words.push(w);
    }
    const r = parseMarkRuleArgs(cmd, words);
    if (typeof r === 'string') fail(r);
    rule = r;
  }

  const stray = popt.getArg();
  if (stray !== null) fail(`unexpected argument ${stray}`);

  if (schedFlagsArg.length > 0) {
    svc.flags &= ~SVC_F_SCHED_MASK;
    svc.flags |= parseSchedFlags(svc.schedName, schedFlagsArg);
  }

  genericOptCheck(cmd, options);

  if (cmd === 'add-service' || cmd === 'edit-service') {
    if (svc.fwmark === 0 && svc.port === 0 && !(svc.flags & SVC_F_PERSISTENT)) {
      fail('Zero port specified for non-persistent service');
    }
    if ((svc.flags & SVC_F_ONEPACKET) && svc.fwmark === 0 && svc.protocol !== PROTO_UDP) {
      fail('One-Packet Scheduling is only for UDP virtual services');
    }
    if (svc.schedName.length === 0) svc.schedName = DEF_SCHED;
  }

  if (cmd === 'start-daemon' && daemon.ifn.length === 0) daemon.ifn = DEF_MCAST_IFN;

  if (cmd === 'add-server' || cmd === 'edit-server') {
    // -g and -i cannot change the port: the real server gets the service's port.
    if (svc.fwmark === 0 && (dest.fwd === FWD_TUNNEL || dest.fwd === FWD_DROUTE)) dest.port = svc.port;
    if (dest.af !== svc.af && dest.fwd !== FWD_TUNNEL) {
      fail('Different address family is allowed only for tunneling servers');
    }
    const tunOpts = [OPT.TUN_TYPE, OPT.TUN_PORT, OPT.TUN_NOCSUM, OPT.TUN_CSUM, OPT.TUN_REMCSUM].some((c) => options.has(c));
    if (tunOpts && dest.fwd !== FWD_TUNNEL) fail('Tunnel options conflict with forward method');
    tunnelOptCheck(dest.tunType, options);
  }

  switch (cmd) {
    case 'list': {
      const has = (c: number) => options.has(c);
      const special = has(OPT.CONNECTION) || has(OPT.TIMEOUT) || has(OPT.DAEMON) || has(OPT.MARK_RULES);
      const columns = has(OPT.STATS) || has(OPT.RATE) || has(OPT.THRESHOLDS);
      const noConnList = has(OPT.TIMEOUT) || has(OPT.DAEMON) || has(OPT.MARK_RULES);
      if ((special && columns) || (noConnList && has(OPT.PERSISTENTCONN))) {
        fail('options conflicts in the list command');
      }
      let target: ListTarget = 'all';
      if (has(OPT.CONNECTION)) target = 'connections';
      else if (has(OPT.SERVICE)) target = 'service';
      else if (has(OPT.TIMEOUT)) target = 'timeout';
      else if (has(OPT.DAEMON)) target = 'daemon';
      else if (has(OPT.MARK_RULES)) target = 'mark-rules';
      return { cmd, target, svc: target === 'service' ? serviceKeyOf(svc) : null, format };
    }
    case 'restore':
      return { cmd };
    case 'save':
      return { cmd, format };
    case 'flush':
      return { cmd };
    case 'add-service':
    case 'edit-service':
    case 'delete-service':
      return { cmd, svc: serviceSpecOf(svc) };
    case 'zero':
      // libipvs names a service only if it has a mark, an address or a port.
      if (svc.fwmark === 0 && isZeroAddr(svc.addr) && svc.port === 0) return { cmd, svc: null };
      return { cmd, svc: serviceKeyOf(svc) };
    case 'add-server':
    case 'edit-server':
    case 'delete-server': {
      const spec = serviceSpecOf(svc);
      const daf: 4 | 6 = dest.af === 6 ? 6 : 4;
      return {
        cmd, svc: spec,
        dest: {
          af: daf, addr: addrText(daf, dest.addr), port: dest.port, fwdMethod: dest.fwd,
          weight: dest.weight, uThreshold: dest.u, lThreshold: dest.l,
          tunType: dest.tunType, tunPort: dest.tunPort, tunFlags: dest.tunFlags,
        },
      };
    }
    case 'set':
      return { cmd, timeouts };
    case 'start-daemon':
    case 'stop-daemon':
      return {
        cmd,
        daemon: {
          state: daemon.state, mcastIfn: daemon.ifn, syncId: daemon.syncId, syncMaxlen: daemon.maxlen,
          mcastGroup: daemon.group, mcastPort: daemon.port, mcastTtl: daemon.ttl,
        },
      };
    case 'add-mark-rule':
    case 'del-mark-rule':
      return { cmd, rule: rule! };
  }
}
