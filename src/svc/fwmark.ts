/**
 * The in-engine firewall-mark classifier: a ulvs extension standing in for the
 * iptables/nft rules that set skb->mark before IPVS sees a packet. An ordered
 * list of rules (af, protocol or 0 = any, destination prefix, destination port
 * range) → mark; the first matching rule wins, no match gives mark 0.
 * classify() runs per packet and allocates nothing.
 */
import type { MarkRule } from '../ctl/api.js';
import { CtlError } from '../ctl/types.js';
import { formatIp4, formatIp6, parseIp4, parseIp6 } from '../util/ip.js';

interface CompiledRule {
  readonly af: 4 | 6;
  readonly protocol: number;
  readonly portLo: number;
  readonly portHi: number;
  readonly mark: number;
  /** Prefix masks and the masked network, most significant word first. */
  readonly m0: number; readonly m1: number; readonly m2: number; readonly m3: number;
  readonly a0: number; readonly a1: number; readonly a2: number; readonly a3: number;
  /** The rule as listed (address normalised to the network). */
  readonly rule: MarkRule;
}

function maskWord(prefix: number, word: number): number {
  const bits = prefix - 32 * word;
  if (bits >= 32) return 0xffffffff;
  if (bits <= 0) return 0;
  return (0xffffffff << (32 - bits)) >>> 0;
}

function invalid(msg: string): never {
  throw new CtlError('EINVAL', msg);
}

function isU16(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff;
}

function compile(r: MarkRule): CompiledRule {
  if (r.af !== 4 && r.af !== 6) throw new CtlError('EAFNOSUPPORT', 'address family not supported');
  if (r.protocol !== 0 && r.protocol !== 6 && r.protocol !== 17 && r.protocol !== 132) invalid('protocol must be 0, 6, 17 or 132');
  const maxPrefix = r.af === 4 ? 32 : 128;
  if (!Number.isInteger(r.prefix) || r.prefix < 0 || r.prefix > maxPrefix) invalid('prefix length out of range');
  if (!isU16(r.portLo) || !isU16(r.portHi) || r.portLo > r.portHi) invalid('bad port range');
  if (!Number.isInteger(r.mark) || r.mark < 1 || r.mark > 0xffffffff) invalid('mark must be 1..4294967295');
  let w: [number, number, number, number];
  if (r.af === 4) {
    const v = typeof r.addr === 'string' ? parseIp4(r.addr) : null;
    if (v === null) invalid(`bad IPv4 address ${String(r.addr)}`);
    w = [v, 0, 0, 0];
  } else {
    const v = typeof r.addr === 'string' ? parseIp6(r.addr) : null;
    if (v === null) invalid(`bad IPv6 address ${String(r.addr)}`);
    w = v;
  }
  const m0 = maskWord(r.prefix, 0), m1 = maskWord(r.prefix, 1), m2 = maskWord(r.prefix, 2), m3 = maskWord(r.prefix, 3);
  const a0 = (w[0] & m0) >>> 0, a1 = (w[1] & m1) >>> 0, a2 = (w[2] & m2) >>> 0, a3 = (w[3] & m3) >>> 0;
  const addr = r.af === 4 ? formatIp4(a0) : formatIp6(a0, a1, a2, a3);
  const rule: MarkRule = {
    af: r.af, protocol: r.protocol, addr, prefix: r.prefix, portLo: r.portLo, portHi: r.portHi, mark: r.mark,
  };
  return { af: r.af, protocol: r.protocol, portLo: r.portLo, portHi: r.portHi, mark: r.mark, m0, m1, m2, m3, a0, a1, a2, a3, rule };
}

function sameMatch(a: CompiledRule, b: CompiledRule): boolean {
  return a.af === b.af && a.protocol === b.protocol && a.rule.prefix === b.rule.prefix &&
    a.a0 === b.a0 && a.a1 === b.a1 && a.a2 === b.a2 && a.a3 === b.a3 &&
    a.portLo === b.portLo && a.portHi === b.portHi;
}

export class FwmarkClassifier {
  /** Bumped on every change. */
  version = 0;
  private rules: CompiledRule[] = [];

  get size(): number {
    return this.rules.length;
  }

  /**
   * Appends a rule (EINVAL for a malformed one). A rule with exactly the same
   * match (family, protocol, network, ports) already present is EEXIST: it
   * would shadow or duplicate it.
   */
  add(r: MarkRule): void {
    const c = compile(r);
    if (this.rules.some((x) => sameMatch(x, c))) throw new CtlError('EEXIST', 'mark rule already exists');
    this.rules = [...this.rules, c];
    this.version++;
  }

  /** Removes the rule with this match and mark; ENOENT when there is none. */
  delete(r: MarkRule): void {
    const c = compile(r);
    const i = this.rules.findIndex((x) => sameMatch(x, c) && x.mark === c.mark);
    if (i < 0) throw new CtlError('ENOENT', 'no such mark rule');
    this.rules = this.rules.filter((_, j) => j !== i);
    this.version++;
  }

  /** The rules in match order, addresses normalised to their network. */
  list(): MarkRule[] {
    return this.rules.map((c) => ({ ...c.rule }));
  }

  flush(): void {
    if (this.rules.length === 0) return;
    this.rules = [];
    this.version++;
  }

  /** The mark for a packet (0 = none). IPv4 reads daddr[0] only; dport is 0 for port-less protocols. */
  classify(af: number, protocol: number, daddr: Uint32Array, dport: number): number {
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (r.af !== af) continue;
      if (r.protocol !== 0 && r.protocol !== protocol) continue;
      if (dport < r.portLo || dport > r.portHi) continue;
      if (((daddr[0]! & r.m0) >>> 0) !== r.a0) continue;
      if (af === 6 && (((daddr[1]! & r.m1) >>> 0) !== r.a1 || ((daddr[2]! & r.m2) >>> 0) !== r.a2 ||
          ((daddr[3]! & r.m3) >>> 0) !== r.a3)) continue;
      return r.mark;
    }
    return 0;
  }
}
