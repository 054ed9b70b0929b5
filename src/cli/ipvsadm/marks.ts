/**
 * ulvs extension: the fwmark classifier rules (what iptables/nft MARK rules do
 * for kernel IPVS). Command line:
 *   --add-mark-rule PROTO ADDR[/PREFIX] PORT[-PORT] MARK
 *   --del-mark-rule PROTO ADDR[/PREFIX] PORT[-PORT] MARK
 * PROTO is tcp, udp, sctp or any; ADDR a numeric IPv4 or IPv6 address (no
 * brackets), PREFIX defaults to the full length; PORT a port, a range, or `*`;
 * MARK 1..4294967295 like -f. Listed by `-L --mark-rules`, saved by -S.
 */
import type { MarkRule } from '../../ctl/api.js';
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP } from '../../svc/types.js';
import { inetPton4, inetPton6, ntop4, ntop6, stringToNumber, cStrtol } from './libc.js';

const PROTOS: Readonly<Record<string, number>> = { tcp: PROTO_TCP, udp: PROTO_UDP, sctp: PROTO_SCTP, any: 0 };

export function markProtoName(p: number): string {
  if (p === PROTO_TCP) return 'tcp';
  if (p === PROTO_UDP) return 'udp';
  if (p === PROTO_SCTP) return 'sctp';
  if (p === 0) return 'any';
  return String(p);
}

/** `80`, `80-90`, or `*` for the whole range. */
export function markPortsText(r: MarkRule): string {
  if (r.portLo === 0 && r.portHi === 65535) return '*';
  if (r.portLo === r.portHi) return String(r.portLo);
  return `${r.portLo}-${r.portHi}`;
}

/** The four positional words as -S writes them. */
export function markRuleWords(r: MarkRule): string[] {
  return [markProtoName(r.protocol), `${r.addr}/${r.prefix}`, markPortsText(r), String(r.mark >>> 0)];
}

function parseMark(s: string): number | null {
  const v = cStrtol(s, 10);
  if (v.end === 0 || v.end !== s.length || v.overflow) return null;
  const l = BigInt.asUintN(64, v.value);
  if (l === 0n || l > 0xffffffffn) return null;
  return Number(l);
}

/**
 * Parses the four words of --add-mark-rule/--del-mark-rule. Returns the rule or
 * the message to report (exit 2, like any other ipvsadm value error).
 */
export function parseMarkRuleArgs(cmd: string, words: readonly string[]): MarkRule | string {
  if (words.length < 4) return `--${cmd} option requires 4 values: PROTO ADDR[/PREFIX] PORT[-PORT] MARK`;
  const [protoW, addrW, portW, markW] = words as [string, string, string, string];
  const protocol = PROTOS[protoW];
  if (protocol === undefined) return `invalid mark-rule protocol \`${protoW}'`;

  const slash = addrW.indexOf('/');
  const host = slash >= 0 ? addrW.slice(0, slash) : addrW;
  let af: 4 | 6;
  let addr: string;
  const v4 = inetPton4(host);
  if (v4 !== null) {
    af = 4;
    addr = ntop4(v4);
  } else {
    const v6 = inetPton6(host);
    if (v6 === null) return `invalid mark-rule address \`${addrW}'`;
    af = 6;
    addr = ntop6(v6);
  }
  const maxPrefix = af === 4 ? 32 : 128;
  let prefix = maxPrefix;
  if (slash >= 0) {
    prefix = stringToNumber(addrW.slice(slash + 1), 0, maxPrefix);
    if (prefix === -1) return `invalid mark-rule address \`${addrW}'`;
  }

  let portLo = 0;
  let portHi = 65535;
  if (portW !== '*') {
    const dash = portW.indexOf('-', 1);
    const lo = stringToNumber(dash >= 0 ? portW.slice(0, dash) : portW, 0, 65535);
    const hi = dash >= 0 ? stringToNumber(portW.slice(dash + 1), 0, 65535) : lo;
    if (lo === -1 || hi === -1 || hi < lo) return `invalid mark-rule port \`${portW}'`;
    portLo = lo;
    portHi = hi;
  }

  const mark = parseMark(markW);
  if (mark === null) return `invalid fwmark value \`${markW}' specified`;
  return { af, protocol, addr, prefix, portLo, portHi, mark };
}
