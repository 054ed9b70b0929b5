/**
 * What the kernel must not handle (worker-protocol.ts HideSpec), kept up to date
 * per operation instead of recomputed from the whole table.
 *
 * Why: the worker used to rebuild the full HideSpec after every control
 * operation (two sorted walks of every service and dest, a JSON.stringify to see
 * whether it changed) and, since an added service always changes it, to clone the
 * whole spec to the main thread — milliseconds per `ipvsadm -A` with a thousand
 * services, and `ipvsadm -R` of a big save file quadratic. An operation on one
 * service can only change that service's share (its VIP, its NAT dests), so the
 * worker (HideTracker) re-derives just that share and sends the difference
 * (HideChange); the main thread's nftables guard applies it to its rules
 * (kernel-guard.ts HideRuleset). HideSet rebuilds the whole spec from changes
 * (tests, diagnostics).
 */
import type { ServiceKey } from '../ctl/types.js';
import { svcKeyFromCtl } from '../svc/convert.js';
import type { FwmarkClassifier } from '../svc/fwmark.js';
import type { IpvsTable } from '../svc/table.js';
import { FWD_MASQ, type Service } from '../svc/types.js';
import { formatIp4, formatIp6, parseIp6, type IpAddr } from '../util/ip.js';
import type { HideChange, HideMark, HideReal, HideSpec, HideVip } from './worker-protocol.js';

function fmt(a: IpAddr): string {
  return a.af === 4 ? formatIp4(a.w0) : formatIp6(a.w0, a.w1, a.w2, a.w3);
}

function entryKey(e: HideVip | HideReal): string {
  return `${e.af} ${e.proto} ${e.addr} ${e.port}`;
}

function emptyChange(): HideChange {
  return { add: { vips: [], reals: [] }, del: { vips: [], reals: [] } };
}

function isEmpty(c: HideChange): boolean {
  return c.add.vips.length === 0 && c.add.reals.length === 0 && c.del.vips.length === 0 &&
    c.del.reals.length === 0 && c.marks === undefined;
}

/** One service's share of the HideSpec. */
interface Share {
  vip: HideVip | null;
  reals: HideReal[];
  /** The service's fwmark (its classifier rules are hidden while it lives), or 0. */
  fwmark: number;
  /** IPv4 VIP address (gratuitous ARP), or -1. */
  vip4: number;
  /** IPv6 VIP address as text (unsolicited Neighbor Advertisement), or null. */
  vip6: string | null;
}

function shareOf(s: Service): Share {
  const reals: HideReal[] = [];
  for (const d of s.dests) {
    if (d.fwdMethod !== FWD_MASQ) continue;
    reals.push({ af: d.addr.af, proto: s.protocol, addr: fmt(d.addr), port: d.port });
  }
  const plain = s.fwmark === 0;
  return {
    vip: plain ? { af: s.af, proto: s.protocol, addr: fmt(s.addr), port: s.port } : null,
    reals,
    fwmark: s.fwmark,
    vip4: plain && s.af === 4 ? s.addr.w0 >>> 0 : -1,
    vip6: plain && s.af === 6 ? fmt(s.addr) : null,
  };
}

/** How many owners hold each key; says when a key comes into use. */
class RefCounts<K> {
  private readonly n = new Map<K, number>();

  has(k: K): boolean {
    return this.n.has(k);
  }

  /** Moves one reference from `from` to `to` (either may be `none`); true when `to` was not held before. */
  move(from: K, to: K, none: K): boolean {
    if (from === to) return false;
    if (from !== none) {
      const n = this.n.get(from)! - 1;
      if (n === 0) this.n.delete(from);
      else this.n.set(from, n);
    }
    if (to === none) return false;
    const n = this.n.get(to) ?? 0;
    this.n.set(to, n + 1);
    return n === 0;
  }
}

/** Which services an operation may change the share of, found before it runs. */
export type HideScope =
  | { kind: 'none' }
  | { kind: 'marks' }
  | { kind: 'all' }
  | { kind: 'service'; key: unknown; before: Service | null };

/** Operations on one service (named by their first argument): only its share can change. */
const SERVICE_OPS = new Set(['addService', 'editService', 'delService', 'addDest', 'editDest', 'delDest']);
/** Operations that never change a service's address, its NAT dests or the classifier. */
const NEUTRAL_OPS = new Set(['zero', 'setTimeouts', 'startDaemon', 'stopDaemon']);
const MARK_OPS = new Set(['addMarkRule', 'delMarkRule']);

/**
 * The worker's side: the share last reported for every linked service, so that
 * after an operation only the services it named are looked at. Anything else
 * (flush, an operation it does not know) re-derives every share, which is what
 * the worker did for every operation before.
 */
export class HideTracker {
  private readonly shares = new Map<Service, Share>();
  /** Live fwmark services per mark (their classifier rules are hidden). */
  private readonly liveMarks = new RefCounts<number>();
  /** Services per VIP address, IPv4 and IPv6: an address is announced when it comes into use. */
  private readonly vip4 = new RefCounts<number>();
  private readonly vip6 = new RefCounts<string | null>();
  private newVip4: number[] = [];
  private newVip6: string[] = [];
  private marksKey = '[]';

  constructor(private readonly table: IpvsTable, private readonly classifier: FwmarkClassifier) {}

  /** Call before running `op`: what to look at afterwards. */
  scope(op: string, args: readonly unknown[]): HideScope {
    if (NEUTRAL_OPS.has(op)) return { kind: 'none' };
    if (MARK_OPS.has(op)) return { kind: 'marks' };
    if (SERVICE_OPS.has(op)) return { kind: 'service', key: args[0], before: this.lookup(args[0]) };
    return { kind: 'all' };
  }

  /** Call after the operation ran (succeeded or failed): what changed, or undefined. */
  change(scope: HideScope): HideChange | undefined {
    if (scope.kind === 'none') return undefined;
    const c = emptyChange();
    let marks = scope.kind !== 'service';
    if (scope.kind === 'service') {
      const after = this.lookup(scope.key);
      if (scope.before !== null) marks = this.update(scope.before, c) || marks;
      if (after !== null && after !== scope.before) marks = this.update(after, c) || marks;
    } else if (scope.kind === 'all') {
      const seen = new Set<Service>(this.shares.keys());
      for (const s of this.table.services()) seen.add(s);
      for (const s of seen) this.update(s, c);
    }
    if (marks) {
      const list: HideMark[] = [];
      for (const r of this.classifier.list()) {
        if (!this.liveMarks.has(r.mark)) continue;
        list.push({ af: r.af, proto: r.protocol, addr: r.addr, prefix: r.prefix, portLo: r.portLo, portHi: r.portHi });
      }
      const key = JSON.stringify(list);
      if (key !== this.marksKey) {
        this.marksKey = key;
        c.marks = list;
      }
    }
    return isEmpty(c) ? undefined : c;
  }

  /** IPv4 VIP addresses that appeared since the last call, in the order they appeared (gratuitous ARP). */
  takeNewVip4(): number[] {
    const v = this.newVip4;
    this.newVip4 = [];
    return v;
  }

  /** IPv6 VIP addresses (words) that appeared since the last call, in order (unsolicited NA). */
  takeNewVip6(): number[][] {
    const v = this.newVip6.map((a) => parseIp6(a)!);
    this.newVip6 = [];
    return v;
  }

  /** The whole spec as the tracker has reported it (tests compare it with a fresh derivation). */
  spec(): HideSpec {
    const set = new HideSet();
    const c = emptyChange();
    for (const sh of this.shares.values()) {
      if (sh.vip !== null) c.add.vips.push(sh.vip);
      c.add.reals.push(...sh.reals);
    }
    c.marks = JSON.parse(this.marksKey) as HideMark[];
    set.apply(c);
    return set.spec();
  }

  private lookup(key: unknown): Service | null {
    try {
      return this.table.getService(svcKeyFromCtl(key as ServiceKey));
    } catch {
      return null; // a malformed key names no service; the operation fails on it too
    }
  }

  /** Re-derives one service's share and records the difference; true when a fwmark service came or went. */
  private update(s: Service, c: HideChange): boolean {
    const old = this.shares.get(s);
    const now = this.table.getService(s) === s ? shareOf(s) : undefined;
    if (now === undefined) this.shares.delete(s);
    else this.shares.set(s, now);
    if (old === undefined && now === undefined) return false;

    const oldVip = old?.vip ?? null;
    const newVip = now?.vip ?? null;
    if (oldVip === null || newVip === null || entryKey(oldVip) !== entryKey(newVip)) {
      if (oldVip !== null) c.del.vips.push(oldVip);
      if (newVip !== null) c.add.vips.push(newVip);
    }
    diffReals(old?.reals ?? [], now?.reals ?? [], c);

    const newV4 = now?.vip4 ?? -1;
    if (this.vip4.move(old?.vip4 ?? -1, newV4, -1)) this.newVip4.push(newV4);
    const newV6 = now?.vip6 ?? null;
    if (this.vip6.move(old?.vip6 ?? null, newV6, null)) this.newVip6.push(newV6!);

    const oldMark = old?.fwmark ?? 0;
    const newMark = now?.fwmark ?? 0;
    this.liveMarks.move(oldMark, newMark, 0);
    return oldMark !== newMark;
  }
}

/** Reals that left and came, as multisets (a service's dest list is short; both lists are walked once). */
function diffReals(before: HideReal[], after: HideReal[], c: HideChange): void {
  if (before.length === 0 && after.length === 0) return;
  const count = new Map<string, number>();
  for (const r of before) { const k = entryKey(r); count.set(k, (count.get(k) ?? 0) + 1); }
  for (const r of after) {
    const k = entryKey(r);
    const n = count.get(k) ?? 0;
    if (n > 0) count.set(k, n - 1);
    else c.add.reals.push(r);
  }
  for (const r of before) {
    const k = entryKey(r);
    const n = count.get(k) ?? 0;
    if (n > 0) { count.set(k, n - 1); c.del.reals.push(r); }
  }
}

/**
 * The HideSpec rebuilt from HideChanges, counted so that an entry reported by two
 * owners (the same NAT real server in two services) stays until both are gone.
 * Entries keep the order they first appeared in.
 */
export class HideSet {
  private readonly vips = new Map<string, { e: HideVip; n: number }>();
  private readonly reals = new Map<string, { e: HideReal; n: number }>();
  private marks: HideMark[] = [];

  apply(c: HideChange): void {
    for (const v of c.del.vips) release(this.vips, v);
    for (const r of c.del.reals) release(this.reals, r);
    for (const v of c.add.vips) hold(this.vips, v);
    for (const r of c.add.reals) hold(this.reals, r);
    if (c.marks !== undefined) this.marks = c.marks.map((m) => ({ ...m }));
  }

  spec(): HideSpec {
    return {
      vips: [...this.vips.values()].map((x) => ({ ...x.e })),
      marks: this.marks.map((m) => ({ ...m })),
      reals: [...this.reals.values()].map((x) => ({ ...x.e })),
    };
  }
}

function hold<T extends HideVip | HideReal>(m: Map<string, { e: T; n: number }>, e: T): void {
  const k = entryKey(e);
  const x = m.get(k);
  if (x === undefined) m.set(k, { e: { ...e }, n: 1 });
  else x.n++;
}

function release<T extends HideVip | HideReal>(m: Map<string, { e: T; n: number }>, e: T): void {
  const k = entryKey(e);
  const x = m.get(k);
  if (x === undefined) return;
  if (--x.n === 0) m.delete(k);
}
